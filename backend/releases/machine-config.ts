// The machine config every Rhone app runs with. Vango apps keep sessions in RAM behind a
// WebSocket, so machines are never auto-stopped, restart whenever they exit, and get SIGTERM with
// 30 s to drain before they are killed.
import { MACHINE_SIZES, type MachineSize } from '../lib/fly-presets.ts';
import { META, type MachineConfig, type MachineServiceCheck } from '../providers/fly/types.ts';

export interface RuntimeSettings {
  region: string;
  machineSize: string;
  internalPort: number;
  healthCheckPath: string;
  instanceCount: number;
}

export interface CheckTiming {
  interval: string;
  timeout: string;
  gracePeriod: string;
}

export const VANGO_CHECK: CheckTiming = { interval: '10s', timeout: '5s', gracePeriod: '30s' };
export const STOP_TIMEOUT = '30s';

export function healthCheck(settings: RuntimeSettings, timing: CheckTiming = VANGO_CHECK): MachineServiceCheck {
  return {
    type: 'http',
    port: settings.internalPort,
    method: 'GET',
    path: settings.healthCheckPath,
    protocol: 'http',
    interval: timing.interval,
    timeout: timing.timeout,
    grace_period: timing.gracePeriod,
  };
}

/**
 * Fly's own metadata, with the values flyctl gives them (fly-go machine_types.go:
 * MachineFlyPlatformVersion2 = "v2", MachineProcessGroupApp = "app"; flyctl
 * machines_deploymachinesapp.go sets fly_release_id and fly_release_version from its release).
 * Without fly_platform_version=v2 flyctl counts the machines as unmanaged ("detached") and
 * Fly's dashboard does not group them into the app's releases. Rhone's release is the deployment.
 */
export function flyStandardMetadata(deploymentId: string, releaseVersion: number | undefined): Record<string, string> {
  return {
    fly_platform_version: 'v2',
    fly_process_group: 'app',
    fly_release_id: deploymentId,
    ...(releaseVersion !== undefined ? { fly_release_version: String(releaseVersion) } : {}),
  };
}

export function machineConfig(input: {
  image: string;
  appId: string;
  deploymentId: string;
  /** The deployment's number (fly_release_version). */
  releaseVersion?: number;
  launchId: string;
  settings: RuntimeSettings;
  env?: Record<string, string>;
  checkTiming?: CheckTiming;
}): MachineConfig {
  const size = MACHINE_SIZES[input.settings.machineSize as MachineSize] ?? MACHINE_SIZES['shared-cpu-1x'];
  return {
    image: input.image,
    env: { ...input.env, PORT: String(input.settings.internalPort) },
    guest: { cpu_kind: size.cpuKind, cpus: size.cpus, memory_mb: size.memoryMb },
    metadata: {
      ...flyStandardMetadata(input.deploymentId, input.releaseVersion),
      [META.app]: input.appId,
      [META.deployment]: input.deploymentId,
      [META.launchId]: input.launchId,
    },
    restart: { policy: 'always' },
    stop_config: { signal: 'SIGTERM', timeout: STOP_TIMEOUT },
    services: [
      {
        protocol: 'tcp',
        internal_port: input.settings.internalPort,
        autostop: 'off',
        autostart: true,
        min_machines_running: 1,
        concurrency: { type: 'connections', soft_limit: 500, hard_limit: 1000 },
        ports: [
          { port: 443, handlers: ['tls', 'http'] },
          { port: 80, handlers: ['http'], force_https: true },
        ],
        checks: [healthCheck(input.settings, input.checkTiming)],
      },
    ],
  };
}

/** "10s", "500ms", "1m30s" → milliseconds. */
export function durationMs(d: string): number {
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let matched = '';
  for (let m = re.exec(d); m; m = re.exec(d)) {
    matched += m[0];
    total += Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  }
  if (matched !== d) throw new Error(`"${d}" is not a duration like "10s"`);
  return total;
}
