// After a stage: the next stage, live, or the end (failed or canceled), written so that a database
// blip at this point never makes the stage's finished work run again (a finished build built twice,
// its log twice): each write waits for the database instead of failing the job.
import type { Knex } from 'knex';
import { Deployment } from '../backend/models/index.ts';
import { appendEvents } from '../backend/deployments/events.ts';
import { capText, REASON_MAX } from '../backend/deployments/redact.ts';
import { retryWhileDatabaseDown } from '../backend/lib/db-errors.ts';
import { reportCommitStatus } from '../backend/deployments/commit-status.ts';
import { isTerminal, type Stage } from '../backend/deployments/pipeline.ts';
import { stageJobId, startNextQueued } from '../backend/commands/deployments.ts';
import { enqueue } from './queues.ts';
import type { PipelineDeps } from './stage.ts';

export async function addStatus(knex: Knex | Knex.Transaction, id: string, status: string, stage: string | null, reason?: string) {
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
    await Deployment.query(trx)
      .patch({ ...patch, status: 'live', finishedAt: new Date() })
      .where({ id: d.id });
    await addStatus(trx, d.id, 'live', 'deploy');
  });
  await reportCommitStatus(deps.queues, [{ deployment: d, status: 'live' }], deps.log);
}

/** The stage's work is done: record what it made and its timing, then start the next stage or go live. */
export async function settleDone(deps: PipelineDeps, stage: Stage, next: Stage | undefined, deployment: Deployment, patch: Partial<Deployment>): Promise<void> {
  const timing = deployment.stageTimings[stage];
  const timings = {
    ...deployment.stageTimings,
    [stage]: { ...timing, startedAt: timing?.startedAt ?? new Date().toISOString(), finishedAt: new Date().toISOString() },
  };
  if (next) {
    await untilDatabaseAnswers(deps, async () =>
      Deployment.query(deps.knex)
        .patch({ ...patch, stageTimings: timings })
        .where({ id: deployment.id }),
    );
    await enqueue(deps.queues, next, { deploymentId: deployment.id }, stageJobId(next, deployment.id, deployment.recoveries));
    return;
  }
  await untilDatabaseAnswers(deps, () => goLive(deps, deployment, { ...patch, stageTimings: timings }));
  await untilDatabaseAnswers(deps, () => startNextQueued(deps.knex, deps.queues, deployment.appId));
}

/** The stage stopped for a cancel: the deployment ends canceled, saying who asked. */
export async function settleCanceled(deps: PipelineDeps, id: string): Promise<void> {
  await untilDatabaseAnswers(deps, async () => finish(deps, id, 'canceled', await cancelReason(deps, id)));
}

/** The stage failed for good: the deployment ends failed with `why` (redacted already). */
export async function settleFailed(deps: PipelineDeps, id: string, why: string): Promise<void> {
  await untilDatabaseAnswers(deps, () => finish(deps, id, 'failed', why));
}

export function untilDatabaseAnswers<T>(deps: PipelineDeps, fn: () => Promise<T>): Promise<T> {
  return retryWhileDatabaseDown(fn, {
    onRetry: (err, inMs) => deps.log.warn({ err: { message: errorMessage(err) }, retryInMs: inMs }, 'the database is unreachable; trying again'),
  });
}

export function errorMessage(err: unknown): string {
  try {
    return err instanceof Error ? err.message : String(err);
  } catch {
    return 'an error that could not be described';
  }
}

async function cancelReason(deps: PipelineDeps, id: string): Promise<string> {
  const row = await deps
    .knex('deployments')
    .leftJoin('users', 'users.id', 'deployments.cancel_requested_by')
    .where('deployments.id', id)
    .first('users.login as login');
  return row?.login ? `Canceled by ${row.login}.` : 'Canceled.';
}
