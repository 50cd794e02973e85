// The reaper: every 30 s, it looks for deployments nobody is working on. A stage whose worker
// stopped heartbeating and whose job is gone (the worker was killed, Redis lost the job) is run
// again (every stage is safe to repeat) a couple of times, then failed with a reason. Queued
// deployments whose app has nothing in flight are started (after a Redis flush, nothing else would).
import { Deployment } from '../../backend/models/index.ts';
import { stageJobId, startNextQueued } from '../../backend/commands/deployments.ts';
import { IN_FLIGHT_STATUSES, type Stage } from '../../backend/deployments/pipeline.ts';
import { enqueue, queue } from '../queues.ts';
import type { PipelineDeps } from '../stage.ts';
import { finish } from '../stage-settle.ts';
import { sweepDeliveries } from '../../backend/commands/webhooks.ts';
import { sweepTeardowns } from './app-teardown.ts';

/**
 * Four missed heartbeats (every 5 s, jobs/stage.ts). Only a deployment whose job is also gone or
 * failed is recovered, so a slow database that delays heartbeats never makes a stage run twice.
 */
export const STALE_AFTER_MS = 20_000;
export const MAX_RECOVERIES = 2;

export async function reap(deps: PipelineDeps, now = Date.now()): Promise<{ recovered: string[]; failed: string[]; started: string[] }> {
  const out = { recovered: [] as string[], failed: [] as string[], started: [] as string[] };
  const stale = await Deployment.query(deps.knex)
    .whereIn('status', [...IN_FLIGHT_STATUSES])
    .where((q) => q.whereNull('heartbeatAt').orWhere('heartbeatAt', '<', new Date(now - STALE_AFTER_MS)));
  for (const d of stale) {
    const stage = d.stage as Stage;
    const job = d.jobId ? await queue(deps.queues, stage).getJob(d.jobId) : undefined;
    const state = job ? await job.getState() : 'missing';
    // A job still waiting, delayed or active will be picked up (BullMQ moves stalled ones back).
    if (['waiting', 'delayed', 'active', 'prioritized', 'waiting-children'].includes(state)) continue;
    if (d.cancelRequestedAt) {
      await finish(deps, d.id, 'canceled', 'Canceled (the worker running it had stopped).');
      out.failed.push(d.id);
      continue;
    }
    if (d.recoveries >= MAX_RECOVERIES) {
      await finish(
        deps,
        d.id,
        'failed',
        `The worker running the ${stage} stage stopped responding ${d.recoveries + 1} times; Rhone gave up. Deploy again; if it keeps happening, the build may be exhausting the worker's memory.`,
      );
      out.failed.push(d.id);
      continue;
    }
    const recoveries = d.recoveries + 1;
    const claimed = await Deployment.query(deps.knex).patch({ recoveries, heartbeatAt: new Date() }).where({ id: d.id, recoveries: d.recoveries });
    if (claimed === 0) continue; // another reaper got it
    deps.log.warn({ deploymentId: d.id, stage, state }, 'recovering a deployment whose worker stopped');
    await enqueue(deps.queues, stage, { deploymentId: d.id }, stageJobId(stage, d.id, recoveries));
    out.recovered.push(d.id);
  }
  const queuedApps = await Deployment.query(deps.knex).distinct('appId').where({ status: 'queued' });
  for (const { appId } of queuedApps) {
    await startNextQueued(deps.knex, deps.queues, appId);
    out.started.push(appId);
  }
  return out;
}

export function reaper(deps: PipelineDeps) {
  return async () => {
    // Webhook deliveries stored while the queue was unreachable get their job here.
    const webhookDeliveries = await sweepDeliveries(deps.knex, deps.queues, deps.log);
    // So are the teardowns of deleted apps.
    const appTeardowns = await sweepTeardowns(deps.knex, deps.queues, deps.log);
    return { ...(await reap(deps)), webhookDeliveries, appTeardowns };
  };
}
