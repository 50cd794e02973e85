// Removes a deleted app's Fly app: its machines (stopped and destroyed by Fly, or by the local
// runtime), secrets, certificates and IPs. Idempotent: Fly's 404 for an app already gone is done.
// It deletes by the stored name only after checking that the Fly app carries this Rhone app's
// mark (its network, providers/fly/app-setup.ts isOurFlyApp): a name may by then belong to a newer
// app, or to someone else on Fly, and DELETE /v1/apps destroys everything the app owns.
import type { Job } from 'bullmq';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Config } from '../../backend/config.ts';
import { enqueueTeardown, teardownJobId } from '../../backend/commands/apps.ts';
import { machinesApi } from '../../backend/providers/fly/index.ts';
import { isOurFlyApp } from '../../backend/providers/fly/app-setup.ts';
import type { QueueContext } from '../queues.ts';
import { QUEUES, queue } from '../queues.ts';

export const definition = QUEUES.appTeardown;

/** A teardown still pending this long after it was asked for has lost its job; the reaper re-enqueues it. */
export const TEARDOWN_SWEEP_AFTER_MS = 60_000;

export async function tearDown(knex: Knex, config: Config, teardownId: string): Promise<'done' | 'already-done' | 'refused' | 'unknown'> {
  const row = await knex('appTeardowns').where({ id: teardownId }).first();
  if (!row) return 'unknown';
  if (row.doneAt) return 'already-done';
  try {
    const { client } = machinesApi(config);
    const flyApp = await client.getApp(row.flyApp);
    if (flyApp) {
      // Teardowns written before they recorded the app id cannot be checked: leave those to a person.
      const ours = row.appId ? await isOurFlyApp(client, flyApp, row.appId) : false;
      if (!ours) {
        const why = row.appId ? "it is not this app's (its network is not this app's)" : 'this teardown predates app ids, so ownership cannot be checked';
        const lastError = `Did not delete the Fly app ${row.flyApp}: ${why}. If it is Rhone's, delete it with \`fly apps destroy ${row.flyApp}\`.`;
        await knex('appTeardowns').where({ id: teardownId }).update({ doneAt: new Date(), lastError });
        return 'refused';
      }
      await client.deleteApp(row.flyApp);
    }
  } catch (err) {
    await knex('appTeardowns')
      .where({ id: teardownId })
      .update({ lastError: (err as Error).message.slice(0, 1000) });
    throw err;
  }
  await knex('appTeardowns').where({ id: teardownId }).update({ doneAt: new Date(), lastError: null });
  return 'done';
}

/** For the reaper: teardowns whose job was lost (Redis down at delete time, or flushed). */
export async function sweepTeardowns(knex: Knex, queues: QueueContext, log: Logger, now = Date.now()): Promise<number> {
  const pending = await knex('appTeardowns')
    .whereNull('doneAt')
    .where('requestedAt', '<', new Date(now - TEARDOWN_SWEEP_AFTER_MS))
    .select('id', 'sweeps');
  let swept = 0;
  for (const row of pending) {
    const job = await queue(queues, 'appTeardown').getJob(teardownJobId(row.id, row.sweeps));
    const state = job ? await job.getState() : 'missing';
    if (['waiting', 'delayed', 'active', 'prioritized', 'waiting-children'].includes(state)) continue;
    const claimed = await knex('appTeardowns')
      .where({ id: row.id, sweeps: row.sweeps })
      .update({ sweeps: row.sweeps + 1 });
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
