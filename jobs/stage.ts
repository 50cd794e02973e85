// What every pipeline stage shares: taking the deployment into the stage, a heartbeat, one
// AbortSignal for cancel and the deadline, the log, and what happens after: the next stage, live,
// a retry, or a failure in words the user can act on. A stage that finds its work already done,
// or its deployment finished, returns without doing anything, so a retried job is harmless.
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { Knex } from 'knex';
import objection from 'objection';
import type { Logger } from 'pino';
import type { Config } from '../backend/config.ts';
import { App, Deployment, TERMINAL_STATUSES } from '../backend/models/index.ts';
import { appendEvents, createLogSink } from '../backend/deployments/events.ts';
import { capText, createRedactor, REASON_MAX, safeText, type Redactor } from '../backend/deployments/redact.ts';
import { retryWhileDatabaseDown } from '../backend/lib/db-errors.ts';
import { reportCommitStatus } from '../backend/deployments/commit-status.ts';
import type { ConfigSnapshot } from '../backend/deployments/snapshot.ts';
import { STAGE_STATUS, stageJobId, startNextQueued, type Stage } from '../backend/commands/deployments.ts';
import { AppError } from '../backend/lib/errors.ts';
import { enqueue, QUEUES, type QueueContext } from './queues.ts';
import { watchCancel } from './cancel.ts';

export interface PipelineDeps {
  knex: Knex;
  config: Config;
  queues: QueueContext;
  log: Logger;
}

export interface StageContext {
  deployment: Deployment;
  app: App;
  snapshot: ConfigSnapshot;
  signal: AbortSignal;
  /** A line in the deployment's log. */
  log(line: string, stream?: 'stdout' | 'stderr' | 'system'): void;
  /** Values to redact from every text of the stage from here on: log lines, the reason, the job failure (build and deploy add the env values first thing). */
  redact(values: string[]): void;
  deps: PipelineDeps;
}

export interface StageDefinition {
  stage: Stage;
  next?: Stage;
  run(ctx: StageContext): Promise<Partial<Deployment> | void>;
}

const ORDER: Stage[] = ['clone', 'analyze', 'build', 'deploy'];
const HEARTBEAT_MS = 5000;

/** Errors that retrying cannot fix: the user has to change something. */
export class UserFacingError extends Error {}

function isPermanent(err: unknown): boolean {
  if (err instanceof UserFacingError) return true;
  // An error that says so itself (backend/source/limits.ts TooLargeError): the input must change.
  if ((err as { permanent?: unknown })?.permanent === true) return true;
  if (err instanceof AppError && err.status < 500) return true;
  const name = (err as Error)?.name ?? '';
  // A source that is unreachable or timed out may answer next time; a missing branch will not.
  if ((err as { transient?: boolean }).transient === true) return false;
  return ['SourceError', 'AnalyzeError', 'BuildError', 'ReleaseError'].includes(name);
}

const isTerminal = (status: string) => (TERMINAL_STATUSES as readonly string[]).includes(status);

async function addStatus(knex: Knex | Knex.Transaction, id: string, status: string, stage: string | null, reason?: string) {
  await appendEvents(knex, id, [{ type: 'status', data: reason ? { status, stage, reason } : { status, stage } }]);
}

/** Ends a deployment (failed or canceled) unless it already ended; then lets the app's next one start. */
export async function finish(deps: PipelineDeps, id: string, status: 'failed' | 'canceled', text: string): Promise<void> {
  // Callers pass safeText (or a fixed sentence); the cap holds whatever they pass.
  const reason = capText(text, REASON_MAX);
  const ended = await deps.knex.transaction(async (trx) => {
    const d = await Deployment.query(trx).findById(id).forUpdate();
    if (!d || isTerminal(d.status)) return null;
    const timings = { ...d.stageTimings };
    if (d.stage && timings[d.stage] && !timings[d.stage].finishedAt) timings[d.stage] = { ...timings[d.stage], finishedAt: new Date().toISOString() };
    await Deployment.query(trx).patch({ status, reason, finishedAt: new Date(), stageTimings: timings }).where({ id });
    await addStatus(trx, id, status, d.stage, reason);
    return d;
  });
  if (!ended) return;
  await reportCommitStatus(deps.queues, [{ deployment: ended, status }], deps.log);
  await startNextQueued(deps.knex, deps.queues, ended.appId);
}

async function goLive(deps: PipelineDeps, d: Deployment, patch: Partial<Deployment>): Promise<void> {
  await deps.knex.transaction(async (trx) => {
    const replaced = await Deployment.query(trx).where({ appId: d.appId, status: 'live' }).whereNot({ id: d.id });
    for (const old of replaced) {
      await Deployment.query(trx).patch({ status: 'replaced' }).where({ id: old.id });
      await addStatus(trx, old.id, 'replaced', null, `Replaced by deployment #${d.number}`);
    }
    await Deployment.query(trx).patch({ ...patch, status: 'live', finishedAt: new Date() }).where({ id: d.id });
    await addStatus(trx, d.id, 'live', 'deploy');
  });
  await reportCommitStatus(deps.queues, [{ deployment: d, status: 'live' }], deps.log);
}

/** Moves the deployment into this stage. Returns null when there is nothing to do. */
async function enter(deps: PipelineDeps, def: StageDefinition, id: string, jobId: string): Promise<Deployment | null | 'wait'> {
  try {
    return await deps.knex.transaction(async (trx) => {
      const d = await Deployment.query(trx).findById(id).forUpdate();
      if (!d || isTerminal(d.status)) return null;
      const here = ORDER.indexOf(def.stage);
      const at = d.stage ? ORDER.indexOf(d.stage as Stage) : -1;
      if (at > here) return null; // a later stage already started: this job's work is done
      const timings = { ...d.stageTimings };
      if (timings.queued && !timings.queued.finishedAt) timings.queued = { ...timings.queued, finishedAt: new Date().toISOString() };
      timings[def.stage] = { startedAt: timings[def.stage]?.startedAt ?? new Date().toISOString() };
      await Deployment.query(trx)
        .patch({ status: STAGE_STATUS[def.stage], stage: def.stage, stageTimings: timings, heartbeatAt: new Date(), jobId, startedAt: d.startedAt ?? new Date() })
        .where({ id });
      if (d.status !== STAGE_STATUS[def.stage]) await addStatus(trx, id, STAGE_STATUS[def.stage], def.stage);
      return Deployment.query(trx).findById(id).throwIfNotFound();
    });
  } catch (err) {
    // Another deployment of the app is in flight (the one-in-flight index): wait for it.
    if (err instanceof objection.UniqueViolationError) return 'wait';
    throw err;
  }
}

export function stageProcessor(def: StageDefinition, deps: PipelineDeps) {
  const queue = QUEUES[def.stage];
  return async (job: Job, token?: string) => {
    const { deploymentId } = queue.payload.parse(job.data) as { deploymentId: string };
    const entered = await untilDatabaseAnswers(deps, () => enter(deps, def, deploymentId, String(job.id)));
    if (entered === null) return { skipped: true };
    if (entered === 'wait') {
      await job.moveToDelayed(Date.now() + 3000, token);
      throw new DelayedError();
    }
    const deployment = entered;
    const app = await App.query(deps.knex).findById(deployment.appId);
    if (!app) {
      await finish(deps, deploymentId, 'failed', 'The app was deleted while this deployment ran.');
      return { skipped: true };
    }
    // Every text this stage lets out (log lines, the reason, the status event, the job's failure
    // in Redis, the worker's log) goes through this one redactor, fed the env values by the
    // stages that open them (build and deploy) before they run anything.
    const secrets: string[] = [];
    const redact = createRedactor(secrets);
    const sink = createLogSink({
      knex: deps.knex,
      deploymentId,
      stage: def.stage,
      secrets,
      onTrouble: ({ error, retryInMs, lost }) => deps.log.warn({ deploymentId, err: { message: safeText(redact, errorMessage(error), 500) }, retryInMs, lost }, 'could not write the deployment log'),
    });
    const controller = new AbortController();
    const deadline = setTimeout(() => controller.abort(new UserFacingError(`The ${def.stage} stage took longer than ${Math.round(queue.timeoutMs / 60000)} min and was stopped.`)), queue.timeoutMs);
    const stopWatching = watchCancel(deploymentId, () => controller.abort(new CancelRequested()));
    const heartbeat = setInterval(() => {
      void Deployment.query(deps.knex)
        .patch({ heartbeatAt: new Date() })
        .where({ id: deploymentId })
        .returning(['cancelRequestedAt'])
        .then((rows) => {
          const row = (rows as unknown as Deployment[])[0];
          if (row?.cancelRequestedAt) controller.abort(new CancelRequested());
        })
        .catch((err: unknown) => deps.log.warn({ err, deploymentId }, 'heartbeat failed'));
    }, HEARTBEAT_MS);
    if (deployment.cancelRequestedAt) controller.abort(new CancelRequested());

    const ctx: StageContext = {
      deployment,
      app,
      snapshot: deployment.configSnapshot as unknown as ConfigSnapshot,
      signal: controller.signal,
      log: (line, stream = 'system') => sink.write(stream, line),
      redact: (values) => secrets.push(...values.filter((v) => v.length >= 4)),
      deps,
    };
    let patch: Partial<Deployment>;
    try {
      if (controller.signal.aborted) throw controller.signal.reason;
      patch = (await def.run(ctx)) ?? {};
    } catch (err) {
      const reason = controller.signal.aborted ? controller.signal.reason : err;
      if (reason instanceof CancelRequested) {
        ctx.log('Canceled: stopped what this stage was doing; the previous release keeps serving.');
        await sink.close();
        await untilDatabaseAnswers(deps, async () => finish(deps, deploymentId, 'canceled', await cancelReason(deps, deploymentId)));
        return { canceled: true };
      }
      const message = safeText(redact, errorMessage(reason), REASON_MAX);
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (isPermanent(reason) || lastAttempt) {
        ctx.log(`Failed: ${message}`, 'stderr');
        await sink.close();
        const why = safeText(redact, isPermanent(reason) ? message : `The ${def.stage} stage failed ${job.attemptsMade + 1} times; the last error was: ${message}`, REASON_MAX);
        await untilDatabaseAnswers(deps, () => finish(deps, deploymentId, 'failed', why));
        throw new UnrecoverableError(why);
      }
      ctx.log(`Attempt ${job.attemptsMade + 1} of the ${def.stage} stage failed (${message}); trying again.`, 'stderr');
      await sink.close();
      // BullMQ keeps the thrown error's message and stack in Redis (failedReason, stacktrace) and
      // the worker logs it: hand it the redacted message, not the original error.
      throw new StageAttemptError(reason, message, redact);
    } finally {
      clearTimeout(deadline);
      clearInterval(heartbeat);
      stopWatching();
    }
    // The stage's work is done. From here a database blip must not make it run again (a finished
    // build built twice, its log twice): settling waits for the database instead of failing.
    const timings = { ...deployment.stageTimings, [def.stage]: { ...deployment.stageTimings[def.stage], startedAt: deployment.stageTimings[def.stage]?.startedAt ?? new Date().toISOString(), finishedAt: new Date().toISOString() } };
    await sink.close();
    if (def.next) {
      const next = def.next;
      await untilDatabaseAnswers(deps, async () => Deployment.query(deps.knex).patch({ ...patch, stageTimings: timings }).where({ id: deploymentId }));
      await enqueue(deps.queues, next, { deploymentId }, stageJobId(next, deploymentId, deployment.recoveries));
    } else {
      await untilDatabaseAnswers(deps, () => goLive(deps, deployment, { ...patch, stageTimings: timings }));
      await untilDatabaseAnswers(deps, () => startNextQueued(deps.knex, deps.queues, deployment.appId));
    }
    return { ok: true };
  };
}

function untilDatabaseAnswers<T>(deps: PipelineDeps, fn: () => Promise<T>): Promise<T> {
  return retryWhileDatabaseDown(fn, { onRetry: (err, inMs) => deps.log.warn({ err: { message: errorMessage(err) }, retryInMs: inMs }, 'the database is unreachable; trying again') });
}

function errorMessage(err: unknown): string {
  try {
    return err instanceof Error ? err.message : String(err);
  } catch {
    return 'an error that could not be described';
  }
}

/** A failed attempt as BullMQ stores it: the original error's kind and frames, its message redacted. */
export class StageAttemptError extends Error {
  constructor(original: unknown, safeMessage: string, redact: Redactor) {
    super(safeMessage);
    const name = original instanceof Error && /^\w{1,60}$/.test(original.name) ? original.name : 'Error';
    this.name = name;
    const frames = original instanceof Error && typeof original.stack === 'string' ? original.stack.split('\n').filter((l) => /^\s+at /.test(l)) : [];
    this.stack = [`${name}: ${safeMessage}`, ...frames.slice(0, 20).map((l) => safeText(redact, l, 300))].join('\n');
  }
}

export class CancelRequested extends Error {
  constructor() {
    super('canceled');
    this.name = 'CancelRequested';
  }
}

async function cancelReason(deps: PipelineDeps, id: string): Promise<string> {
  const row = await deps.knex('deployments').leftJoin('users', 'users.id', 'deployments.cancel_requested_by').where('deployments.id', id).first('users.login as login');
  return row?.login ? `Canceled by ${row.login}.` : 'Canceled.';
}
