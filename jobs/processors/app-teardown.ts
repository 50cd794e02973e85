// Removes a deleted app's Fly app: its machines (stopped and destroyed by Fly, or by the local
// runtime), secrets, certificates and IPs. Idempotent: Fly's 404 for an app already gone is done.
import type { Job } from 'bullmq';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Config } from '../../backend/config.ts';
import { enqueueTeardown, teardownJobId } from '../../backend/commands/apps.ts';
import { machinesApi } from '../../backend/providers/fly/index.ts';
import type { QueueContext } from '../queues.ts';
import { QUEUES, queue } from '../queues.ts';

export const definition = QUEUES.appTeardown;

/** A teardown still pending this long after it was asked for has lost its job; the reaper re-enqueues it. */
export const TEARDOWN_SWEEP_AFTER_MS = 60_000;

export async function tearDown(knex: Knex, config: Config, teardownId: string): Promise<'done' | 'already-done' | 'unknown'> {
  const row = await knex('appTeardowns').where({ id: teardownId }).first();
  if (!row) return 'unknown';
  if (row.doneAt) return 'already-done';
  try {
    await machinesApi(config).client.deleteApp(row.flyApp);
  } catch (err) {
    await knex('appTeardowns').where({ id: teardownId }).update({ lastError: (err as Error).message.slice(0, 1000) });
    throw err;
  }
  await knex('appTeardowns').where({ id: teardownId }).update({ doneAt: new Date(), lastError: null });
  return 'done';
}

/** For the reaper: teardowns whose job was lost (Redis down at delete time, or flushed). */
export async function sweepTeardowns(knex: Knex, queues: QueueContext, log: Logger, now = Date.now()): Promise<number> {
  const pending = await knex('appTeardowns').whereNull('doneAt').where('requestedAt', '<', new Date(now - TEARDOWN_SWEEP_AFTER_MS)).select('id', 'sweeps');
  let swept = 0;
  for (const row of pending) {
    const job = await queue(queues, 'appTeardown').getJob(teardownJobId(row.id, row.sweeps));
    const state = job ? await job.getState() : 'missing';
    if (['waiting', 'delayed', 'active', 'prioritized', 'waiting-children'].includes(state)) continue;
    const claimed = await knex('appTeardowns').where({ id: row.id, sweeps: row.sweeps }).update({ sweeps: row.sweeps + 1 });
    if (!claimed) continue;
    log.warn({ teardownId: row.id, state }, 're-enqueuing the teardown of a deleted app');
    await enqueueTeardown(queues, row.id, row.sweeps + 1);
    swept++;
  }
  return swept;
}

export function processor(knex: Knex, config: Config) {
  return async (job: Job) => {
    const { teardownId } = definition.payload.parse(job.data);
    return tearDown(knex, config, teardownId);
  };
}
