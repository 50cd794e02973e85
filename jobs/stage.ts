// What every pipeline stage shares: taking the deployment into the stage, its guards (a heartbeat,
// the deadline and cancel, behind one AbortSignal: stage-guards.ts), the log, and what happens
// after: the next stage, live, a retry, or a failure in words the user can act on (stage-settle.ts).
// A stage that finds its work already done, or its deployment finished, returns without doing
// anything, so a retried job is harmless.
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { Knex } from 'knex';
import objection from 'objection';
import type { Logger } from 'pino';
import type { Config } from '../backend/config.ts';
import { App, Deployment } from '../backend/models/index.ts';
import { createLogSink, type LogSink } from '../backend/deployments/events.ts';
import { createRedactor, REASON_MAX, safeText, type Redactor } from '../backend/deployments/redact.ts';
import { isTerminal, STAGE_STATUS, stageIndex, type Stage } from '../backend/deployments/pipeline.ts';
import type { ConfigSnapshot } from '../backend/deployments/snapshot.ts';
import { CanceledError, isPermanent, PermanentError } from '../backend/lib/errors.ts';
import { QUEUES, type QueueContext } from './queues.ts';
import { guardStage } from './stage-guards.ts';
import { addStatus, errorMessage, finish, settleCanceled, settleDone, settleFailed, untilDatabaseAnswers } from './stage-settle.ts';

export { finish } from './stage-settle.ts';

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

/** A failure the user has to fix (retrying cannot help); its message is the reason they read. */
export class UserFacingError extends PermanentError {}

/** Moves the deployment into this stage. Returns null when there is nothing to do. */
async function enter(deps: PipelineDeps, def: StageDefinition, id: string, jobId: string): Promise<Deployment | null | 'wait'> {
  try {
    return await deps.knex.transaction(async (trx) => {
      const d = await Deployment.query(trx).findById(id).forUpdate();
      if (!d || isTerminal(d.status)) return null;
      if (stageIndex(d.stage) > stageIndex(def.stage)) return null; // a later stage already started: this job's work is done
      const timings = { ...d.stageTimings };
      if (timings.queued && !timings.queued.finishedAt) timings.queued = { ...timings.queued, finishedAt: new Date().toISOString() };
      timings[def.stage] = { startedAt: timings[def.stage]?.startedAt ?? new Date().toISOString() };
      await Deployment.query(trx)
        .patch({
          status: STAGE_STATUS[def.stage],
          stage: def.stage,
          stageTimings: timings,
          heartbeatAt: new Date(),
          jobId,
          startedAt: d.startedAt ?? new Date(),
        })
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
      onTrouble: ({ error, retryInMs, lost }) =>
        deps.log.warn({ deploymentId, err: { message: safeText(redact, errorMessage(error), 500) }, retryInMs, lost }, 'could not write the deployment log'),
    });
    const guards = guardStage({ knex: deps.knex, log: deps.log, deployment, stage: def.stage, timeoutMs: queue.timeoutMs });
    const ctx: StageContext = {
      deployment,
      app,
      snapshot: deployment.configSnapshot,
      signal: guards.signal,
      log: (line, stream = 'system') => sink.write(stream, line),
      redact: (values) => secrets.push(...values.filter((v) => v.length >= 4)),
      deps,
    };
    let patch: Partial<Deployment>;
    try {
      if (guards.signal.aborted) throw guards.signal.reason;
      patch = (await def.run(ctx)) ?? {};
    } catch (err) {
      // Once the signal fired, its reason (a cancel, the deadline) is why the stage stopped, whatever the work threw.
      const reason: unknown = guards.signal.aborted ? guards.signal.reason : err;
      const canceled = guards.signal.aborted && reason instanceof CanceledError;
      return await settleThrown({ deps, def, job, ctx, sink, redact }, reason, canceled); // awaited: the guards stay up until it settles
    } finally {
      guards.stop();
    }
    await sink.close();
    await settleDone(deps, def.stage, def.next, deployment, patch);
    return { ok: true };
  };
}

interface Thrown {
  deps: PipelineDeps;
  def: StageDefinition;
  job: Job;
  ctx: StageContext;
  sink: LogSink;
  redact: Redactor;
}

/** The stage threw: end canceled, end failed (a permanent error or the last attempt), or throw for a retry. */
async function settleThrown({ deps, def, job, ctx, sink, redact }: Thrown, reason: unknown, canceled: boolean): Promise<{ canceled: true }> {
  const deploymentId = ctx.deployment.id;
  if (canceled) {
    ctx.log('Canceled: stopped what this stage was doing; the previous release keeps serving.');
    await sink.close();
    await settleCanceled(deps, deploymentId);
    return { canceled: true };
  }
  const message = safeText(redact, errorMessage(reason), REASON_MAX);
  const attempt = job.attemptsMade + 1;
  const permanent = isPermanent(reason);
  if (permanent || attempt >= (job.opts.attempts ?? 1)) {
    ctx.log(`Failed: ${message}`, 'stderr');
    await sink.close();
    const why = safeText(redact, permanent ? message : `The ${def.stage} stage failed ${attempt} times; the last error was: ${message}`, REASON_MAX);
    await settleFailed(deps, deploymentId, why);
    throw new UnrecoverableError(why);
  }
  ctx.log(`Attempt ${attempt} of the ${def.stage} stage failed (${message}); trying again.`, 'stderr');
  await sink.close();
  // BullMQ keeps the thrown error's message and stack in Redis (failedReason, stacktrace) and
  // the worker logs it: hand it the redacted message, not the original error.
  throw new StageAttemptError(reason, message, redact);
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
