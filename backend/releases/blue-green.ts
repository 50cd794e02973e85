// A blue/green release through the Machines API, as flyctl does it, one code path for Fly and the
// local runtime: new ("green") machines are born cordoned, must start and pass every health check,
// then take traffic; only then are the old ("blue") ones cordoned, drained with SIGTERM, stopped
// and destroyed. Every step finds its machines by metadata, so running it again after a crash
// picks up where it stopped and never makes twins.
//
// The steps, one function each: prepareApp, inventory, leaseMachines (leases.ts: every machine we
// change is leased, its nonce sent on each change), createGreens, sweepTwins, awaitStarted,
// awaitHealthy, then past the point of no return switchTraffic and retireOldMachines (teardown.ts).
// A failure before the switch runs removeThisRelease; the leases are released either way.
import { setTimeout as delay } from 'node:timers/promises';
import type { FlyClient } from '../providers/fly/client.ts';
import { realChecks } from '../providers/fly/client.ts';
import { FlyApiError } from '../providers/fly/errors.ts';
import { ensureFlyApp, ensurePublicIps } from '../providers/fly/app-setup.ts';
import { META, type Machine } from '../providers/fly/types.ts';
import { durationMs, healthCheck, machineConfig, VANGO_CHECK, type CheckTiming, type RuntimeSettings } from './machine-config.ts';
import { LeaseHeldError, LeaseSet, type LeaseTiming } from './leases.ts';
import { describeExits, readExits } from './machine-failure.ts';
import { hostIsOk, retireOldMachines, retried, type TeardownTiming } from './teardown.ts';

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

export interface ReleaseTiming extends LeaseTiming, TeardownTiming {
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
  // flyctl: DefaultLeaseTtl 13 s (internal/command/deploy/machines.go); teardown and launch
  // retries as strategy_bluegreen.go initialize(): 5 attempts from 500 ms.
  leaseTtlS: 13,
  // Longer than the TTL: a lease left by a worker that died runs out within the wait.
  leaseWaitMs: 30_000,
  teardownRetryAttempts: 5,
  teardownRetryMs: 500,
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
  leaseTtlS: 13,
  // Longer than the TTL: a lease left by a worker that died runs out within the wait.
  leaseWaitMs: 20_000,
  teardownRetryAttempts: 5,
  teardownRetryMs: 200,
};

export interface ReleaseOptions {
  client: FlyClient;
  org: string;
  timing?: Partial<ReleaseTiming>;
  /** A line for the deployment's log: words a user reads. */
  log?: (line: string) => void;
  signal?: AbortSignal;
  /**
   * Called with a new machine that did not become healthy, before it is removed (e.g. to log its
   * output); answers true when it showed output, so the failure reason can point at it.
   */
  onUnhealthy?: (flyApp: string, machineId: string) => Promise<boolean | void>;
}

export interface ReleaseResult {
  machines: string[];
  replaced: string[];
  /** When the old machines were sent SIGTERM (ms since the epoch); unset when there were none. */
  drainStartedAt?: number;
}

/** A release that failed before traffic moved: the old machines still serve. `message` is for the user. */
export class ReleaseError extends Error {
  /** Read by the pipeline (backend/lib/errors.ts isPermanent): not retried; deploy again once the app is fixed. */
  readonly permanent = true;
  constructor(
    message: string,
    readonly phase: 'lease' | 'create' | 'start' | 'health' | 'canceled',
  ) {
    super(message);
    this.name = 'ReleaseError';
  }
}

/** How often, and after how many exits, a new machine counts as crash-looping. */
const CRASH_LOOP_CHECK_MS = 2000;
const CRASH_LOOP_EXITS = 3;

const isGone = (m: Machine) => m.state === 'destroyed' || m.state === 'destroying';
const short = (id: string) => id.slice(0, 8);
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

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

/** What every step needs: one release of one app. */
interface Run {
  input: ReleaseInput;
  options: ReleaseOptions;
  client: FlyClient;
  app: string;
  timing: ReleaseTiming;
  log: (line: string) => void;
  leases: LeaseSet;
  /** Throws when the deployment was canceled. */
  aborted: () => void;
}

export async function release(input: ReleaseInput, options: ReleaseOptions): Promise<ReleaseResult> {
  const timing = { ...FLY_TIMING, ...options.timing };
  const log = options.log ?? (() => undefined);
  const run: Run = {
    input,
    options,
    timing,
    log,
    client: options.client,
    app: input.flyApp,
    leases: new LeaseSet(options.client, input.flyApp, `rhone deploy ${input.deploymentId}`, timing, log),
    aborted: () => {
      if (options.signal?.aborted) throw new ReleaseError('The deployment was canceled before traffic moved; the previous release keeps serving.', 'canceled');
    },
  };
  const minSecretsVersion = await prepareApp(run);
  const { found, blue } = await inventory(run);
  // A retry that finds greens already taking traffic has passed the point of no return.
  const alreadySwitched = [...found.values()].some((m) => m.cordoned === false);
  let greens: Machine[];
  try {
    await leaseMachines(run, [...blue.filter(hostIsOk), ...found.values()]);
    greens = await createGreens(run, found, minSecretsVersion);
    await sweepTwins(run, greens);
    await awaitStarted(run, greens);
    await awaitHealthy(run, greens);
  } catch (err) {
    if (!alreadySwitched) await removeThisRelease(run, blue.length > 0);
    await run.leases.releaseAll();
    throw err;
  }
  try {
    await switchTraffic(run, greens, blue);
    const drainStartedAt = await retireOldMachines(run.client, run.app, blue, run.leases, timing, log);
    log(`Release complete: ${plural(greens.length, 'machine')} serving`);
    return { machines: greens.map((m) => m.id), replaced: blue.map((m) => m.id), drainStartedAt };
  } finally {
    await run.leases.releaseAll();
  }
}

/**
 * The Fly app (the build stage made it before the push; a rollback or the local runtime may not
 * have), its public addresses (flyctl's first deploy allocates them), and the env vars as app
 * secrets: machines created with the returned min_secrets_version see exactly these.
 */
async function prepareApp({ client, app, input, options, log }: Run): Promise<number | undefined> {
  await ensureFlyApp(client, app, options.org, input.appId, log);
  await ensurePublicIps(client, app, log);
  const existing = await client.listSecrets(app);
  const values: Record<string, string | null> = { ...input.secrets };
  for (const s of existing) if (!(s.name in values)) values[s.name] = null;
  if (Object.keys(values).length === 0) return undefined;
  const { version } = await client.setSecrets(app, values);
  log(`Set ${plural(Object.keys(input.secrets).length, 'env var')} as app secrets`);
  return version;
}

/** What is there: machines of this deployment (a retry), by launch id, and the ones serving now. */
async function inventory({ client, app, input }: Run): Promise<{ found: Map<string | undefined, Machine>; blue: Machine[] }> {
  const all = (await client.listMachines(app, { metadata: { [META.app]: input.appId } })).filter((m) => !isGone(m));
  const ours = (m: Machine) => m.config.metadata?.[META.deployment] === input.deploymentId;
  return { found: new Map(all.filter(ours).map((m) => [m.config.metadata?.[META.launchId], m])), blue: all.filter((m) => !ours(m)) };
}

/**
 * Leases every machine the release will change, before it creates anything: a machine someone else
 * holds (another worker, the reaper, `fly machine ...`) stops the release with nothing touched.
 * Machines on a host that is not ok are skipped, as flyctl's AcquireLeases skips them.
 */
async function leaseMachines(run: Run, machines: Machine[]): Promise<void> {
  try {
    for (const m of machines) await run.leases.acquire(m.id, run.options.signal);
  } catch (err) {
    if (!(err instanceof LeaseHeldError)) throw err;
    throw new ReleaseError(
      `Machine ${short(err.machineId)} of the current release is locked by someone else (${err.detail}), so nothing was changed. ` +
        'Another deploy, a cleanup or a `fly` command is working on it: wait for it to finish and deploy again.',
      'lease',
    );
  }
}

/**
 * The missing green machines, born cordoned (skip_service_registration) and leased right after.
 * Not created with lease_ttl as flyctl does: a create whose answer is lost (and that the launch-id
 * lookup then finds) would hold a lease whose nonce we never saw, and lock us out for its TTL.
 */
async function createGreens(run: Run, found: Map<string | undefined, Machine>, minSecretsVersion: number | undefined): Promise<Machine[]> {
  const { client, app, input, timing, log } = run;
  const { region, machineSize, instanceCount } = input.settings;
  const missing = instanceCount - found.size;
  if (missing > 0) log(`Creating ${plural(missing, 'new machine')} in ${region} (${machineSize})`);
  const greens: Machine[] = [];
  for (let i = 0; i < instanceCount; i++) {
    run.aborted();
    const launchId = `${input.deploymentId}:${i}`;
    const existing = found.get(launchId);
    if (existing) {
      greens.push(existing);
      continue;
    }
    const config = machineConfig({ ...input, launchId, checkTiming: timing.checks });
    const machine = await client
      .createMachine(app, { region, config, skip_service_registration: true, min_secrets_version: minSecretsVersion })
      .catch((err: unknown) => {
        throw noCapacity(err, input.settings) ?? err;
      });
    log(`Machine ${short(machine.id)} created`);
    greens.push(machine);
    await run.leases.acquire(machine.id, run.options.signal);
  }
  return greens;
}

/**
 * Fly refuses a create it has no room for with status "insufficient_capacity" (ErrorResponse in the
 * spec). We do not ask first: flyctl's blue/green checks only org limits (GraphQL
 * CanPerformBluegreenDeployment), and `POST /v1/platform/placements` (main.getPlacementsRequest,
 * used by `fly machine place` and `fly launch` to pick a region) simulates a placement without
 * reserving it, so a yes there can still be a no at the create a second later. The create's own
 * answer is the check that counts; it comes before traffic moves, so the old machines keep serving.
 */
function noCapacity(err: unknown, settings: RuntimeSettings): ReleaseError | null {
  if (!(err instanceof FlyApiError) || err.code !== 'insufficient_capacity') return null;
  return new ReleaseError(
    `Fly has no room for another ${settings.machineSize} machine in ${settings.region} right now, so the new release was not started; the previous release keeps serving. ` +
      'Deploy again in a few minutes, or choose another region or a smaller machine size.',
    'create',
  );
}

/**
 * Machines of this deployment we did not keep: twins of a create that took effect but that the
 * launch-id lookup did not see (Fly's listing lags), or greens past a lowered instance count.
 */
async function sweepTwins({ client, app, input, leases, log }: Run, greens: Machine[]): Promise<void> {
  const keep = new Set(greens.map((m) => m.id));
  const extra = (await client.listMachines(app, { metadata: { [META.deployment]: input.deploymentId } })).filter((m) => !isGone(m) && !keep.has(m.id));
  for (const m of extra) {
    await client.destroyMachine(app, m.id, { force: true }, leases.nonce(m.id));
    leases.forget(m.id);
    log(`Removed machine ${short(m.id)}, a duplicate of this release's machines`);
  }
}

async function awaitStarted({ client, app, input, timing, aborted }: Run, greens: Machine[]): Promise<void> {
  for (const m of greens) {
    aborted();
    try {
      const reached = await client.waitForState(app, m.id, 'started,failed', { version: m.version, timeoutMs: timing.startTimeoutMs });
      if (reached.state === 'failed') {
        const exits = describeExits(await readExits(client, app, m.id), input.settings.machineSize);
        throw new ReleaseError(`The new machine ${short(m.id)} failed to start${exits}. Check the start command and the machine's log lines above.`, 'start');
      }
    } catch (err) {
      if (!(err instanceof FlyApiError && err.status === 408)) throw err;
      const now = await client.getMachine(app, m.id);
      throw new ReleaseError(
        `The new machine ${short(m.id)} did not start within ${Math.round(timing.startTimeoutMs / 1000)} s (it is ${now?.state ?? 'gone'}). Check that the start command runs the app in the foreground.`,
        'start',
      );
    }
  }
}

/** Every green machine healthy: all checks passing, at least one check (flyctl WaitForGreenMachinesToBeHealthy). */
async function awaitHealthy(run: Run, greens: Machine[]): Promise<void> {
  const { client, app, input, timing, log } = run;
  log(`${plural(greens.length, 'machine')} started; waiting for GET ${input.settings.healthCheckPath} on port ${input.settings.internalPort} to pass`);
  const graceMs = durationMs(timing.checks.gracePeriod);
  const deadline = Date.now() + graceMs + timing.healthDeadlineMs;
  const pending = new Set(greens.map((m) => m.id));
  const last = new Map<string, Machine | null>();
  let exitsCheckedAt = Date.now();
  while (pending.size > 0) {
    run.aborted();
    if (Date.now() - exitsCheckedAt >= CRASH_LOOP_CHECK_MS) {
      exitsCheckedAt = Date.now();
      for (const id of pending) await failIfCrashing(run, id);
    }
    for (const id of [...pending]) {
      const m = await client.getMachine(app, id);
      last.set(id, m);
      if (m?.state === 'failed' || m?.state === 'stopped' || !m) {
        const { exits, hint } = await unhealthy(run, id, 'The app probably crashed at start: look at its output above.', 'The app probably crashed at start.');
        throw new ReleaseError(`The new machine ${short(id)} stopped before it became healthy (${m ? m.state : 'destroyed'})${exits}. ${hint}`, 'health');
      }
      const checks = realChecks(m);
      if (m.state === 'started' && checks.length > 0 && checks.every((c) => c.status === 'passing')) {
        pending.delete(id);
        log(`Machine ${short(id)} is healthy`);
      }
    }
    if (pending.size === 0) return;
    if (Date.now() > deadline) {
      const id = [...pending][0];
      const check = healthCheck(input.settings, timing.checks);
      const { exits } = await unhealthy(run, id, '', '');
      throw new ReleaseError(
        `The new machine ${short(id)} did not pass its health check (GET ${check.path} on port ${check.port}) within ${Math.round((graceMs + timing.healthDeadlineMs) / 1000)} s: ` +
          `${checkFailure(last.get(id) ?? null)}${exits}. Make sure the app listens on the port in $PORT and answers ${check.path} with a 2xx status.`,
        'health',
      );
    }
    await delay(timing.pollMs);
  }
}

/** An app that keeps exiting, or was killed for memory, will not become healthy: say so now rather than at the deadline. */
async function failIfCrashing(run: Run, id: string): Promise<void> {
  const exits = await readExits(run.client, run.app, id);
  if (exits.count < CRASH_LOOP_EXITS && !exits.last?.oom_killed) return;
  const { hint } = await unhealthy(run, id, 'Its last output is above; fix the error and deploy again.', 'Fix the error and deploy again.');
  throw new ReleaseError(`The new machine ${short(id)} keeps crashing at start${describeExits(exits, run.input.settings.machineSize)}. ${hint}`, 'health');
}

/** Shows the machine's output where one can (local mode) and words the reason by whether it did. */
async function unhealthy(run: Run, id: string, withOutput: string, without: string): Promise<{ exits: string; hint: string }> {
  const shown = (await run.options.onUnhealthy?.(run.app, id)) === true;
  const exits = describeExits(await readExits(run.client, run.app, id), run.input.settings.machineSize);
  return { exits, hint: shown ? withOutput : without };
}

/**
 * Before traffic moves, a failure removes what this release made, found by its deployment id (so
 * twins go too), and the blues keep serving.
 */
async function removeThisRelease({ client, app, input, leases, log }: Run, wasServing: boolean): Promise<void> {
  const made = (await client.listMachines(app, { metadata: { [META.deployment]: input.deploymentId } }).catch(() => [])).filter((m) => !isGone(m));
  if (made.length === 0) return;
  const still = wasServing ? 'the previous release keeps serving' : 'nothing was serving before, so the app stays down';
  log(`Removing the ${plural(made.length, 'new machine')}; ${still}`);
  await Promise.allSettled(made.map((m) => client.destroyMachine(app, m.id, { force: true }, leases.nonce(m.id)).then(() => leases.forget(m.id))));
}

/**
 * Traffic moves: greens take requests (uncordon, retried as flyctl's MarkGreenMachinesAsReadyForTraffic
 * does); from here on we never remove them. Blues are tagged so that a crashed run knows they only
 * wait to be removed (TagBlueMachinesAsSafeForDeletion).
 */
async function switchTraffic({ client, app, leases, timing, log }: Run, greens: Machine[], blue: Machine[]): Promise<void> {
  for (const m of greens) await retried(timing, () => client.uncordon(app, m.id, leases.nonce(m.id)));
  log('Traffic is moving to the new release');
  for (const m of blue.filter(hostIsOk)) {
    await retried(timing, () => client.patchMetadata(app, m.id, { [META.role]: 'safe_to_destroy' }, leases.nonce(m.id))).catch((err) =>
      log(`Could not tag old machine ${short(m.id)} for removal (${(err as Error).message}); it is removed now anyway`),
    );
  }
}
