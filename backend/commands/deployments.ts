// Deployments as users see them: ask for one, cancel one, roll back to one. The pipeline that
// carries them out lives in jobs/; this file decides what is created and what runs next.
import type { Knex } from 'knex';
import type { Redis } from 'ioredis';
import { App, Deployment, type Team } from '../models/index.ts';
import { IN_FLIGHT_STATUSES, isActive, type Stage } from '../deployments/pipeline.ts';
import { AppError, ConflictError } from '../lib/errors.ts';
import type { Actor } from '../middleware/auth.ts';
import type { Config } from '../config.ts';
import { appendEvents } from '../deployments/events.ts';
import { takeSnapshot, type ConfigSnapshot } from '../deployments/snapshot.ts';
import { describeSourceProblem, resolveSource } from '../deployments/source.ts';
import { reportCommitStatus } from '../deployments/commit-status.ts';
import { resolveRef, SourceError } from '../source/git.ts';
import { enqueue, type QueueContext } from '../../jobs/queues.ts';
import { recordAudit } from './audit.ts';
import { transaction } from '../lib/transaction.ts';
import { assertCanDeploy } from '../billing/limits.ts';
import { assertNotPastDue } from '../billing/past-due.ts';

// The pipeline's words moved to backend/deployments/pipeline.ts; re-exported for older importers.
export { IN_FLIGHT_STATUSES as IN_FLIGHT, STAGE_STATUS, type Stage } from '../deployments/pipeline.ts';

/** The job id of a stage of a deployment; a recovery run gets its own suffix. */
export function stageJobId(stage: Stage, deploymentId: string, recovery = 0): string {
  return recovery > 0 ? `${stage}-${deploymentId}-r${recovery}` : `${stage}-${deploymentId}`;
}

export interface DeployRequest {
  ref?: string;
  trigger: 'manual' | 'push' | 'rollback' | 'api';
  commitSha?: string;
  commitMessage?: string | null;
}

async function nextNumber(trx: Knex.Transaction, appId: string): Promise<number> {
  const row = await trx('deployments').where({ appId }).max<{ max: number | null }>('number as max').first();
  return (row?.max ?? 0) + 1;
}

/** Marks queued deployments of the app as superseded by a newer one; returns them. */
async function supersedeQueued(trx: Knex.Transaction, appId: string, byNumber: number): Promise<Deployment[]> {
  const older = await Deployment.query(trx).where({ appId, status: 'queued' });
  for (const d of older) {
    await Deployment.query(trx)
      .patch({ status: 'superseded', reason: `Superseded by deployment #${byNumber} before it started.`, finishedAt: new Date() })
      .where({ id: d.id });
    await appendEvents(trx, d.id, [{ type: 'status', data: { status: 'superseded', stage: null, reason: `Superseded by deployment #${byNumber}` } }]);
  }
  return older;
}

/**
 * Enqueues the first job of the app's queued deployment when nothing of the app is in flight.
 * Safe to call any time, from anywhere: the job id makes a second enqueue a no-op.
 */
export async function startNextQueued(knex: Knex, queues: QueueContext, appId: string): Promise<void> {
  const inFlight = await Deployment.query(knex)
    .where({ appId })
    .whereIn('status', [...IN_FLIGHT_STATUSES])
    .first();
  if (inFlight) return;
  const next = await Deployment.query(knex).where({ appId, status: 'queued' }).orderBy('number', 'desc').first();
  if (!next) return;
  const stage: Stage = next.image ? 'deploy' : 'clone';
  await enqueue(queues, stage, { deploymentId: next.id }, stageJobId(stage, next.id));
}

interface NewDeployment {
  ref: string | null;
  commitSha: string | null;
  commitMessage: string | null;
  trigger: string;
  configSnapshot: ConfigSnapshot;
  rollbackOf?: string;
  image?: string | null;
  plan?: Record<string, unknown> | null;
  /** A push that asked not to be deployed is recorded as skipped, with the reason, and runs nothing. */
  skipped?: { reason: string };
  /** The plan's limits, checked again under the team's lock so two deploys at once can't both pass. */
  limits?: { build: boolean };
}

/** Inserts the deployment (queued, superseding older queued ones, or skipped); reports both to GitHub. */
async function insertDeployment(knex: Knex, queues: QueueContext, app: App, actor: Actor | null, fields: NewDeployment): Promise<Deployment> {
  const { deployment, superseded } = await transaction(knex, async (trx) => {
    if (fields.limits) {
      // One deploy decision per team at a time: the 50th build of the month is the last, even
      // when two requests race for it (the check before resolving the commit was only a first look).
      await trx('teams').where({ id: app.teamId }).forUpdate().first('id');
      await assertCanDeploy(trx, { id: app.teamId }, { ...fields.limits, appId: app.id });
    }
    // One writer per app at a time: numbers and superseding stay consistent.
    await trx('apps').where({ id: app.id }).forUpdate().first('id');
    const number = await nextNumber(trx, app.id);
    const superseded = fields.skipped ? [] : await supersedeQueued(trx, app.id, number);
    const status = fields.skipped ? 'skipped' : 'queued';
    const deployment = await Deployment.query(trx).insertAndFetch({
      appId: app.id,
      number,
      status,
      reason: fields.skipped?.reason ?? null,
      finishedAt: fields.skipped ? new Date() : null,
      ref: fields.ref,
      commitSha: fields.commitSha,
      commitMessage: fields.commitMessage,
      trigger: fields.trigger,
      triggeredBy: actor?.user.id ?? null,
      rollbackOf: fields.rollbackOf ?? null,
      configSnapshot: fields.configSnapshot,
      image: fields.image ?? null,
      plan: fields.plan ?? null,
      stageTimings: { queued: { startedAt: new Date().toISOString() } },
    });
    await appendEvents(trx, deployment.id, [
      { type: 'status', data: fields.skipped ? { status, stage: null, reason: fields.skipped.reason } : { status, stage: null } },
    ]);
    await recordAudit(trx, {
      teamId: app.teamId,
      actor,
      action: fields.rollbackOf ? 'deployment.rolled_back' : fields.skipped ? 'deployment.skipped' : 'deployment.created',
      subjectType: 'deployment',
      subjectId: deployment.id,
      data: { app: app.slug, number, ref: fields.ref, commitSha: fields.commitSha, trigger: fields.trigger },
    });
    return { deployment, superseded };
  });
  await reportCommitStatus(queues, [{ deployment, status: deployment.status }, ...superseded.map((d) => ({ deployment: d, status: 'superseded' as const }))]);
  return deployment;
}

/** The branch look-up runs inside the request: it may hold it this long, not git's 60 s. */
const API_RESOLVE_TIMEOUT_MS = 10_000;

/** POST /api/apps/:app/deploy: pins the commit and the settings now, then queues the work. */
export async function createDeployment(
  knex: Knex,
  config: Config,
  queues: QueueContext,
  actor: Actor | null,
  app: App,
  request: DeployRequest,
): Promise<Deployment> {
  const problem = describeSourceProblem(app);
  if (problem) throw new ConflictError('source_unavailable', problem);
  await assertCanDeploy(knex, { id: app.teamId }, { build: true, appId: app.id });
  await assertNotPastDue(knex, app.teamId);
  const ref = request.ref ?? app.source.branch;
  let sha = request.commitSha;
  let publicOnly = false;
  if (!sha) {
    try {
      const source = await resolveSource(config, app.source);
      publicOnly = source.publicOnly;
      sha = (await resolveRef(source.url, ref, { credentials: source.credentials, publicOnly, timeoutMs: API_RESOLVE_TIMEOUT_MS })).sha;
    } catch (err) {
      // Nothing was written yet: say what is wrong with the source, as a client error.
      if (!(err instanceof SourceError)) throw err;
      // A user's host that does not answer, answers slowly or drops the connection gets one
      // answer, so the look-up tells nothing about what listens where (docs/security.md, "Outbound requests").
      if (publicOnly && err.transient)
        throw new AppError(
          503,
          'source_unreachable',
          `The repository could not be reached within ${API_RESOLVE_TIMEOUT_MS / 1000} s; check the URL, or try again in a moment.`,
        );
      throw new AppError(err.transient ? 503 : 422, `source_${err.code}`, err.message);
    }
  }
  const snapshot = await takeSnapshot(knex, app);
  const deployment = await insertDeployment(knex, queues, app, actor, {
    ref,
    commitSha: sha,
    commitMessage: request.commitMessage ?? null,
    trigger: request.trigger,
    configSnapshot: snapshot,
    limits: { build: true },
  });
  await startNextQueued(knex, queues, app.id);
  return deployment;
}

/** A pushed commit whose message asked not to deploy it: recorded as skipped, with the reason. */
export async function recordSkippedPush(
  knex: Knex,
  queues: QueueContext,
  app: App,
  push: { ref: string; commitSha: string; commitMessage: string | null; reason: string },
): Promise<Deployment> {
  return insertDeployment(knex, queues, app, null, {
    ref: push.ref,
    commitSha: push.commitSha,
    commitMessage: push.commitMessage,
    trigger: 'push',
    configSnapshot: await takeSnapshot(knex, app),
    skipped: { reason: push.reason },
  });
}

/**
 * POST /api/deployments/:id/rollback: deploys an earlier deployment's image and settings again,
 * without building. Auto-deploy goes off, so the next push does not undo the rollback.
 */
export async function rollbackTo(knex: Knex, queues: QueueContext, actor: Actor, app: App, target: Deployment): Promise<Deployment> {
  if (!target.image || !['live', 'replaced'].includes(target.status)) {
    throw new ConflictError(
      'not_rollbackable',
      `Deployment #${target.number} never went live with a built image, so there is nothing to roll back to; pick a deployment that was live.`,
    );
  }
  // No plan limit, spend cap or unpaid invoice refuses a rollback: it builds nothing and replaces
  // the serving machines one for one, and it is how a team gets out of a broken release (no
  // surprise outage is Rhone's rule; running apps keep running whatever is owed).
  const deployment = await insertDeployment(knex, queues, app, actor, {
    ref: target.ref,
    commitSha: target.commitSha,
    commitMessage: target.commitMessage,
    trigger: 'rollback',
    configSnapshot: target.configSnapshot,
    rollbackOf: target.id,
    image: target.image,
    plan: target.plan,
  });
  if (app.autoDeploy) {
    await App.query(knex).patch({ autoDeploy: false }).where({ id: app.id });
    await recordAudit(knex, {
      teamId: app.teamId,
      actor,
      action: 'app.updated',
      subjectType: 'app',
      subjectId: app.id,
      data: { slug: app.slug, fields: ['autoDeploy'], reason: 'rollback' },
    });
  }
  await startNextQueued(knex, queues, app.id);
  return deployment;
}

/**
 * POST /api/deployments/:id/cancel. A queued deployment is canceled at once; one in flight is
 * asked to stop, and the worker running it stops its stage, removes what it made, and marks it.
 */
export async function cancelDeployment(
  knex: Knex,
  queues: QueueContext,
  redis: Pick<Redis, 'publish'>,
  actor: Actor,
  team: Team,
  deployment: Deployment,
): Promise<Deployment> {
  if (!isActive(deployment.status)) {
    throw new ConflictError(
      'not_cancelable',
      `Deployment #${deployment.number} is already ${deployment.status}; only queued or running deployments can be canceled.`,
    );
  }
  const reason = `Canceled by ${actor.user.login}.`;
  const updated = await transaction(knex, async (trx) => {
    const d = await Deployment.query(trx).findById(deployment.id).forUpdate().throwIfNotFound();
    if (d.status === 'queued') {
      await Deployment.query(trx)
        .patch({ status: 'canceled', reason, finishedAt: new Date(), cancelRequestedAt: new Date(), cancelRequestedBy: actor.user.id })
        .where({ id: d.id });
      await appendEvents(trx, d.id, [{ type: 'status', data: { status: 'canceled', stage: null, reason } }]);
    } else if (isActive(d.status)) {
      await Deployment.query(trx).patch({ cancelRequestedAt: new Date(), cancelRequestedBy: actor.user.id }).where({ id: d.id });
    }
    await recordAudit(trx, { teamId: team.id, actor, action: 'deployment.canceled', subjectType: 'deployment', subjectId: d.id, data: { number: d.number } });
    return Deployment.query(trx).findById(d.id).throwIfNotFound();
  });
  // Tell the worker now rather than at its next heartbeat.
  await redis.publish(CANCEL_CHANNEL, updated.id).catch(() => undefined);
  if (updated.status === 'canceled') {
    await reportCommitStatus(queues, [{ deployment: updated, status: 'canceled' }]);
    await startNextQueued(knex, queues, updated.appId);
  }
  return updated;
}

export const CANCEL_CHANNEL = 'rhone:deployments:cancel';
