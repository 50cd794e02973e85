// What a machine's process is started with: the image's command (or the config's init
// override), its directory as cwd, host ports for its services, and its environment.
import { readImage } from './images.ts';
import { freePort, hostEnv } from './processes.ts';
import type { AppRecord, MachineRecord } from './store.ts';

export interface LaunchPlan {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  /** internal_port → host port. */
  hostPorts: Record<string, number>;
  /** The host port the process gets as PORT. */
  primaryPort: number;
}

/** A free port that no other machine holds, preferring the one this machine had before. */
async function allocatePort(preferred: number | undefined, taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freePort(attempt === 0 && preferred && !taken.has(preferred) ? preferred : undefined);
    if (!taken.has(port)) {
      taken.add(port);
      return port;
    }
  }
  throw new Error('no free local port could be found');
}

/** Ports other machines were given (their processes may not be listening yet). */
function portsHeldByOthers(m: MachineRecord, machines: MachineRecord[]): Set<number> {
  const taken = new Set<number>();
  for (const other of machines) {
    if (other.id === m.id || other.state === 'destroyed') continue;
    for (const port of Object.values(other.hostPorts)) taken.add(port);
    if (other.primaryPort) taken.add(other.primaryPort);
  }
  return taken;
}

/** Throws an ImageError when the image cannot be run. */
export async function planLaunch(dataDir: string, m: MachineRecord, app: AppRecord | undefined, machines: MachineRecord[]): Promise<LaunchPlan> {
  const image = await readImage(dataDir, m.config.image);
  const taken = portsHeldByOthers(m, machines);
  const hostPorts: Record<string, number> = {};
  for (const service of m.config.services ?? []) {
    const internal = service.internal_port;
    if (internal === undefined || hostPorts[internal]) continue;
    hostPorts[internal] = await allocatePort(m.hostPorts[internal], taken);
  }
  const firstInternal = m.config.services?.find((s) => s.internal_port !== undefined)?.internal_port;
  const primaryPort = firstInternal !== undefined ? hostPorts[firstInternal] : await allocatePort(m.primaryPort, taken);

  const secrets: Record<string, string> = {};
  if (app && !m.skipSecrets) for (const [name, s] of Object.entries(app.secrets)) secrets[name] = s.value;
  // PORT is always the host port: two machines of one app cannot both listen on internal_port.
  const env: Record<string, string> = {
    ...hostEnv(),
    ...image.manifest.env,
    ...m.config.env,
    ...secrets,
    PORT: String(primaryPort),
    FLY_APP_NAME: m.app,
    FLY_MACHINE_ID: m.id,
    FLY_MACHINE_VERSION: m.version,
    FLY_REGION: m.region,
    FLY_PRIVATE_IP: '127.0.0.1',
    FLY_IMAGE_REF: m.config.image,
    ...(m.config.metadata?.fly_process_group ? { FLY_PROCESS_GROUP: m.config.metadata.fly_process_group } : {}),
  };
  // As on Fly: init.exec replaces everything; init.entrypoint and init.cmd replace the image's command.
  const init = m.config.init ?? {};
  const argv = init.exec?.length
    ? init.exec
    : init.entrypoint?.length || init.cmd?.length
      ? [...(init.entrypoint ?? []), ...(init.cmd ?? [])]
      : image.manifest.cmd;
  return { argv, cwd: image.dir, env, hostPorts, primaryPort };
}
