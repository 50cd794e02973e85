// The Machines API this process talks to: Fly in production, the local runtime in local mode.
// One client either way; only the address and the token differ.
import type { Config } from '../../config.ts';
import { FlyClient } from './client.ts';
import { FLY_TIMING, LOCAL_TIMING, type ReleaseTiming } from '../../releases/blue-green.ts';

export const LOCAL_ORG = 'personal';

export function machinesApi(config: Config): { client: FlyClient; org: string; timing: ReleaseTiming } {
  if (config.isLocal && !config.fly.token) {
    return {
      client: new FlyClient({ baseUrl: `http://127.0.0.1:${config.machinesPort}`, token: 'local-runtime' }),
      org: config.fly.org ?? LOCAL_ORG,
      timing: LOCAL_TIMING,
    };
  }
  if (!config.fly.token || !config.fly.org) throw new Error('FLY_API_TOKEN and FLY_ORG are required to reach Fly');
  return { client: new FlyClient({ baseUrl: config.fly.apiUrl, token: config.fly.token }), org: config.fly.org, timing: FLY_TIMING };
}

export { FlyClient } from './client.ts';
export { flyAppNameForSlug } from './names.ts';
