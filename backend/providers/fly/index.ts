// The Machines API this process talks to: Fly in production, the local runtime in local mode.
// One client either way; only the address and the token differ.
import type { Config } from '../../config.ts';
import { FlyClient } from './client.ts';
import { FLY_TIMING, LOCAL_TIMING, type ReleaseTiming } from '../../releases/blue-green.ts';
import { machinesToken } from '../../../local/token.ts';

export const LOCAL_ORG = 'personal';

/**
 * The local runtime's URL and token. The token is read here, where the client is built, and not
 * in config.ts: it is a file the runtime shares with the api and worker, not a setting, and an
 * unset FLY_API_TOKEN is what tells the code (this file, deploy, poll-usage) to use the runtime.
 */
export function localMachinesApi(config: Config): { baseUrl: string; token: string } {
  return { baseUrl: `http://127.0.0.1:${config.machinesPort}`, token: machinesToken(config.dataDir) };
}

export function machinesApi(config: Config): { client: FlyClient; org: string; timing: ReleaseTiming } {
  if (config.isLocal && !config.fly.token) {
    return {
      client: new FlyClient(localMachinesApi(config)),
      org: config.fly.org ?? LOCAL_ORG,
      timing: LOCAL_TIMING,
    };
  }
  if (!config.fly.token || !config.fly.org) throw new Error('FLY_API_TOKEN and FLY_ORG are required to reach Fly');
  return { client: new FlyClient({ baseUrl: config.fly.apiUrl, token: config.fly.token }), org: config.fly.org, timing: FLY_TIMING };
}

export { FlyClient } from './client.ts';
export { flyAppNameForSlug } from './names.ts';
