// A blue/green release through the Machines API, as flyctl does it, one code path for Fly and the
// local runtime: new ("green") machines are born cordoned, must start and pass every health check,
// then take traffic; only then are the old ("blue") ones cordoned, drained with SIGTERM, stopped
// and destroyed. Every step finds its machines by metadata, so running it again after a crash
// picks up where it stopped and never makes twins.
import { setTimeout as delay } from 'node:timers/promises';
import type { FlyClient } from '../providers/fly/client.ts';
import { realChecks } from '../providers/fly/client.ts';
import { FlyApiError } from '../providers/fly/errors.ts';
import { ensureFlyApp, ensurePublicIps } from '../providers/fly/app-setup.ts';
import { META, type Machine } from '../providers/fly/types.ts';
import { durationMs, healthCheck, machineConfig, STOP_TIMEOUT, VANGO_CHECK, type CheckTiming, type RuntimeSettings } from './machine-config.ts';

export interface ReleaseInput {
  /** The Fly app's name, as stored on the app (apps.fly_app_name). */
  flyApp: string;
  /** Rhone's app id: every machine of the app carries it. */
  appId: string;
  /** The deployment this release belongs to: its machines carry it, which makes retries find them. */
  deploymentId: string;
  /** The deployment's number: the machines' fly_release_version. */
  releaseVersion: number;
  image: string;
  settings: RuntimeSettings;
  /** Env vars, sent as Fly app secrets (never in the machine config, never logged). */
  secrets: Record<string, string>;
  /** Non-secret env for the machine config, e.g. the release label. */
  env?: Record<string, string>;
}

export interface ReleaseTiming {
  /** How long a new machine may take to reach "started". */
  startTimeoutMs: number;
  /** How long checks may take to pass, on top of the check's grace period. */
  healthDeadlineMs: number;
  /** How often to look at the checks. */
  pollMs: number;
  /** Pauses that let Fly's proxy learn about new machines and forget old ones. */
  proxyLearnMs: number;
  proxyForgetMs: number;
  checks: CheckTiming;
}

export const FLY_TIMING: ReleaseTiming = {
  startTimeoutMs: 5 * 60_000,
  healthDeadlineMs: 60_000,
  pollMs: 2000,
  proxyLearnMs: 10_000,
  proxyForgetMs: 10_000,
  checks: VANGO_CHECK,
};

/**
 * The local runtime's router sees a machine's state the moment it changes, so no pauses for a
 * proxy to learn; and checks start sooner, so a local deploy takes seconds, not the half minute
 * Fly's 30 s grace period costs.
 */
export const LOCAL_TIMING: ReleaseTiming = {
  startTimeoutMs: 60_000,
  healthDeadlineMs: 60_000,
  pollMs: 100,
  proxyLearnMs: 0,
  proxyForgetMs: 0,
  checks: { interval: '2s', timeout: '5s', gracePeriod: '500ms' },
};

export interface ReleaseOptions {
  client: FlyClient;
  org: string;
  timing?: Partial<ReleaseTiming>;
  /** A line for the deployment's log: words a user reads. */
  log?: (line: string) => void;
  signal?: AbortSignal;
  /** Called with a new machine that did not become healthy, before it is removed (e.g. to log its output). */
  onUnhealthy?: (flyApp: string, machineId: string) => Promise<void>;
}

export interface ReleaseResult {
  machines: string[];
  replaced: string[];
}

/** A release that failed before traffic moved: the old machines still serve. `message` is for the user. */
export class ReleaseError extends Error {
  constructor(message: string, readonly phase: 'create' | 'start' | 'health' | 'canceled') {
    super(message);
    this.name = 'ReleaseError';
  }
}

/** How often, and after how many exits, a new machine counts as crash-looping. */
const CRASH_LOOP_CHECK_MS = 2000;
const CRASH_LOOP_EXITS = 3;

const isGone = (m: Machine) => m.state === 'destroyed' || m.state === 'destroying';
const short = (id: string) => id.slice(0, 8);

function checkFailure(machine: Machine | null): string {
  if (!machine) return 'the machine disappeared';
  if (machine.state !== 'started') return `the machine is ${machine.state}`;
  const checks = realChecks(machine);
  if (checks.length === 0) return 'no check result yet';
  return checks
    .filter((c) => c.status !== 'passing')
    .map((c) => `${c.status}${c.output ? `: ${c.output.trim().slice(0, 200)}` : ''}`)
    .join('; ');
}

export async function release(input: ReleaseInput, options: ReleaseOptions): Promise<ReleaseResult> {
  const timing = { ...FLY_TIMING, ...options.timing };
  const { client } = options;
  const log = options.log ?? (() => undefined);
  const app = input.flyApp;
  const aborted = () => {
    if (options.signal?.aborted) throw new ReleaseError('The deployment was canceled before traffic moved; the previous release keeps serving.', 'canceled');
  };

  // 1. The Fly app (the build stage made it before the push; a rollback or the local runtime may
  // not have), and its public addresses, which flyctl's first deploy allocates.
  await ensureFlyApp(client, app, options.org, input.appId, log);
  await ensurePublicIps(client, app, log);

  // 2. Env vars as app secrets: machines created with min_secrets_version see exactly these.
  const existing = await client.listSecrets(app);
  const values: Record<string, string | null> = { ...input.secrets };
  for (const s of existing) if (!(s.name in values)) values[s.name] = null;
  let minSecretsVersion: number | undefined;
  if (Object.keys(values).length > 0) {
    minSecretsVersion = (await client.setSecrets(app, values)).version;
    log(`Set ${Object.keys(input.secrets).length} env var${Object.keys(input.secrets).length === 1 ? '' : 's'} as app secrets`);
  }

  // 3. What is there: machines of this deployment (a retry) and the ones serving now.
  const all = (await client.listMachines(app, { metadata: { [META.app]: input.appId } })).filter((m) => !isGone(m));
  const green = new Map(all.filter((m) => m.config.metadata?.[META.deployment] === input.deploymentId).map((m) => [m.config.metadata?.[META.launchId], m]));
  const blue = all.filter((m) => m.config.metadata?.[META.deployment] !== input.deploymentId);

  // A retry that finds greens already taking traffic has passed the point of no return.
  const alreadySwitched = [...green.values()].some((m) => m.cordoned === false);
  const greens: Machine[] = [];
  try {
    // 4. Create the missing green machines, born cordoned.
    const { internalPort, healthCheckPath, region, machineSize, instanceCount } = input.settings;
    const missing = instanceCount - green.size;
    if (missing > 0) log(`Creating ${missing} new machine${missing === 1 ? '' : 's'} in ${region} (${machineSize})`);
    for (let i = 0; i < instanceCount; i++) {
      aborted();
      const launchId = `${input.deploymentId}:${i}`;
      const found = green.get(launchId);
      if (found) {
        greens.push(found);
        continue;
      }
      const config = machineConfig({ ...input, launchId, checkTiming: timing.checks });
      const machine = await client.createMachine(app, {
        region,
        config,
        skip_service_registration: true,
        min_secrets_version: minSecretsVersion,
      });
      log(`Machine ${short(machine.id)} created`);
      greens.push(machine);
    }
    // Greens past the wanted count (instance count lowered between attempts) are not needed.
    for (const [launchId, m] of green) {
      if (!greens.includes(m)) {
        await client.destroyMachine(app, m.id, { force: true });
        green.delete(launchId);
      }
    }

    // 5. Every green machine started.
    for (const m of greens) {
      aborted();
      try {
        const reached = await client.waitForState(app, m.id, 'started,failed', { version: m.version, timeoutMs: timing.startTimeoutMs });
        if (reached.state === 'failed') {
          throw new ReleaseError(`The new machine ${short(m.id)} failed to start${await exitSummary(client, app, m.id)}. Check the start command and the machine's log lines above.`, 'start');
        }
      } catch (err) {
        if (err instanceof FlyApiError && err.status === 408) {
          const now = await client.getMachine(app, m.id);
          throw new ReleaseError(
            `The new machine ${short(m.id)} did not start within ${Math.round(timing.startTimeoutMs / 1000)} s (it is ${now?.state ?? 'gone'}). Check that the start command runs the app in the foreground.`,
            'start',
          );
        }
        throw err;
      }
    }
    log(`${greens.length} machine${greens.length === 1 ? '' : 's'} started; waiting for GET ${healthCheckPath} on port ${internalPort} to pass`);

    // 6. Every green machine healthy: all checks passing, at least one check.
    const graceMs = durationMs(timing.checks.gracePeriod);
    const deadline = Date.now() + graceMs + timing.healthDeadlineMs;
    const pending = new Set(greens.map((m) => m.id));
    const last = new Map<string, Machine | null>();
    let exitsCheckedAt = Date.now();
    while (pending.size > 0) {
      aborted();
      // An app that keeps exiting will not become healthy: say so now rather than at the deadline.
      if (Date.now() - exitsCheckedAt >= CRASH_LOOP_CHECK_MS) {
        exitsCheckedAt = Date.now();
        for (const id of pending) {
          const exits = (await client.listEvents(app, id).catch(() => [])).filter((e) => e.type === 'exit').length;
          if (exits >= CRASH_LOOP_EXITS) {
            await options.onUnhealthy?.(app, id);
            throw new ReleaseError(`The new machine ${short(id)} keeps crashing at start${await exitSummary(client, app, id)}. Its last output is above; fix the error and deploy again.`, 'health');
          }
        }
      }
      for (const id of [...pending]) {
        const m = await client.getMachine(app, id);
        last.set(id, m);
        if (m?.state === 'failed' || m?.state === 'stopped' || !m) {
          await options.onUnhealthy?.(app, id);
          throw new ReleaseError(
            `The new machine ${short(id)} stopped before it became healthy (${m ? m.state : 'destroyed'})${await exitSummary(client, app, id)}. The app probably crashed at start: look at its output above.`,
            'health',
          );
        }
        const checks = realChecks(m);
        if (m.state === 'started' && checks.length > 0 && checks.every((c) => c.status === 'passing')) {
          pending.delete(id);
          log(`Machine ${short(id)} is healthy`);
        }
      }
      if (pending.size === 0) break;
      if (Date.now() > deadline) {
        const id = [...pending][0];
        const check = healthCheck(input.settings, timing.checks);
        await options.onUnhealthy?.(app, id);
        throw new ReleaseError(
          `The new machine ${short(id)} did not pass its health check (GET ${check.path} on port ${check.port}) within ${Math.round((graceMs + timing.healthDeadlineMs) / 1000)} s: ${checkFailure(last.get(id) ?? null)}${await exitSummary(client, app, id)}. Make sure the app listens on the port in $PORT and answers ${check.path} with a 2xx status.`,
          'health',
        );
      }
      await delay(timing.pollMs);
    }
  } catch (err) {
    // Before traffic moves, a failure removes only what this release made; the blues keep serving.
    if (!alreadySwitched) {
      const made = [...new Set([...greens, ...green.values()])];
      const still = blue.length > 0 ? 'the previous release keeps serving' : 'nothing was serving before, so the app stays down';
      if (made.length > 0) log(`Removing the ${made.length} new machine${made.length === 1 ? '' : 's'}; ${still}`);
      await Promise.allSettled(made.map((m) => client.destroyMachine(app, m.id, { force: true })));
    }
    throw err;
  }

  // 7. Traffic moves: greens take requests. From here on we never remove them.
  for (const m of greens) await client.uncordon(app, m.id);
  log('Traffic is moving to the new release');
  // Mark blues so that a crashed run knows they are only waiting to be removed.
  for (const m of blue) await client.patchMetadata(app, m.id, { [META.role]: 'safe_to_destroy' }).catch(() => undefined);

  // 8. Drain the blues: cordon, let the proxy forget them, SIGTERM with time to drain, destroy.
  if (blue.length > 0) {
    await delay(timing.proxyLearnMs);
    for (const m of blue) await client.cordon(app, m.id).catch(ignoreGone);
    await delay(timing.proxyForgetMs);
    log(`Stopping ${blue.length} old machine${blue.length === 1 ? '' : 's'} (SIGTERM, ${STOP_TIMEOUT} to drain connections)`);
    await Promise.all(
      blue.map(async (m) => {
        if (m.state === 'started' || m.state === 'starting') {
          await client.stopMachine(app, m.id, { signal: 'SIGTERM', timeout: STOP_TIMEOUT }).catch(ignoreGone);
          await client.waitForState(app, m.id, 'stopped', { version: m.version, timeoutMs: durationMs(STOP_TIMEOUT) + 15_000 }).catch(ignoreGone);
          log(`Old machine ${short(m.id)} stopped`);
        }
        await client.destroyMachine(app, m.id, { force: true });
      }),
    );
  }
  log(`Release complete: ${greens.length} machine${greens.length === 1 ? '' : 's'} serving`);
  return { machines: greens.map((m) => m.id), replaced: blue.map((m) => m.id) };
}

/** ", and its process exited 3 times (last with exit code 1)", from the machine's events; or "". */
async function exitSummary(client: FlyClient, app: string, id: string): Promise<string> {
  const events = await client.listEvents(app, id).catch(() => []);
  const exits = events.filter((e) => e.type === 'exit');
  if (exits.length === 0) return '';
  const last = exits[0].request as { exit_event?: { exit_code?: number; signal?: number } } | undefined;
  const code = last?.exit_event?.exit_code;
  const how = code !== undefined ? ` (last with exit code ${code})` : '';
  return `, and its process exited ${exits.length} time${exits.length === 1 ? '' : 's'}${how}`;
}

function ignoreGone(err: unknown): void {
  if (err instanceof FlyApiError && (err.status === 404 || err.status === 408)) return;
  throw err;
}
