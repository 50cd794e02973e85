// The reaper: deployments nobody is working on are picked up again or failed with a reason,
// including after Redis lost every job.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { getConfig } from '../backend/config.ts';
import { db } from '../backend/db.ts';
import { redis } from '../backend/redis.ts';
import { Deployment } from '../backend/models/index.ts';
import { takeSnapshot } from '../backend/deployments/snapshot.ts';
import { queue } from '../jobs/queues.ts';
import { MAX_RECOVERIES, reap, STALE_AFTER_MS } from '../jobs/processors/reaper.ts';
import { makeApp, makeUser } from './factories.ts';
import { Team } from '../backend/models/index.ts';
import { startWorkers } from '../jobs/worker.ts';
import { REAPER_TICK_MS, startReaperTicks } from '../jobs/schedules.ts';
import { until } from './local-helpers.ts';

describe('reaper', () => {
  const queues = () => ({ connection: { url: getConfig().redisUrl, maxRetriesPerRequest: null }, prefix: `t-${randomUUID()}` });

  async function world(status: string, fields: Record<string, unknown> = {}) {
    const owner = await makeUser('ada');
    const team = await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound();
    const app = await makeApp(owner, team, 'web');
    const [row] = (await db()('deployments')
      .insert({
        appId: app.id,
        number: 1,
        status,
        trigger: 'manual',
        commitSha: 'a'.repeat(40),
        configSnapshot: JSON.stringify(await takeSnapshot(db(), app)),
        ...fields,
      })
      .returning('id')) as { id: string }[];
    return row.id;
  }

  it('starts a queued deployment whose job Redis lost', async () => {
    const q = queues();
    const id = await world('queued');
    await redis().flushdb();
    const result = await reap({ knex: db(), config: getConfig(), queues: q, log: pino({ level: 'silent' }) });
    assert.equal(result.started.length, 1);
    const job = await queue(q, 'clone').getJob(`clone-${id}`);
    assert.ok(job, 'the clone job is back');
    assert.equal(await job.getState(), 'waiting');
  });

  it('runs a stage again when its worker stopped heartbeating and its job is gone, then gives up with a reason', async () => {
    const q = queues();
    const stale = new Date(Date.now() - STALE_AFTER_MS - 1000);
    const id = await world('building', { stage: 'build', heartbeatAt: stale, jobId: 'build-gone' });
    const deps = { knex: db(), config: getConfig(), queues: q, log: pino({ level: 'silent' }) };
    const first = await reap(deps);
    assert.deepEqual(first.recovered, [id]);
    assert.ok(await queue(q, 'build').getJob(`build-${id}-r1`), 'the build runs again under a new job id');
    // A fresh heartbeat (the recovery) keeps it from being reaped twice at once.
    assert.deepEqual((await reap(deps)).recovered, []);

    await Deployment.query(db()).patch({ heartbeatAt: stale, jobId: 'build-gone-too', recoveries: MAX_RECOVERIES }).where({ id });
    const last = await reap(deps);
    assert.deepEqual(last.failed, [id]);
    const d = await Deployment.query(db()).findById(id).throwIfNotFound();
    assert.equal(d.status, 'failed');
    assert.match(d.reason ?? '', /stopped responding 3 times/);
  });

  it('leaves alone a stage whose job is still queued or running', async () => {
    const q = queues();
    const stale = new Date(Date.now() - STALE_AFTER_MS - 1000);
    const id = await world('building', { stage: 'build', heartbeatAt: stale, jobId: 'build-waiting' });
    await queue(q, 'build').add('build', { deploymentId: id }, { jobId: 'build-waiting' });
    const result = await reap({ knex: db(), config: getConfig(), queues: q, log: pino({ level: 'silent' }) });
    assert.deepEqual(result.recovered, []);
    assert.equal((await Deployment.query(db()).findById(id))?.status, 'building');
  });
});

describe('reaper ticks in every worker', () => {
  it('finds a stage job that Redis lost within one tick, with no job scheduler registered', async () => {
    const prefix = `t-${randomUUID()}`;
    const q = { connection: { url: getConfig().redisUrl, maxRetriesPerRequest: null }, prefix };
    const owner = await makeUser('ada');
    const team = await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound();
    const app = await makeApp(owner, team, 'web');
    // Between two stages: the build's job was waiting when Redis lost every key.
    const stale = new Date(Date.now() - STALE_AFTER_MS - 1000);
    const [row] = (await db()('deployments')
      .insert({
        appId: app.id,
        number: 1,
        status: 'building',
        stage: 'build',
        heartbeatAt: stale,
        jobId: `build-x`,
        trigger: 'manual',
        commitSha: 'a'.repeat(40),
        configSnapshot: JSON.stringify(await takeSnapshot(db(), app)),
      })
      .returning('id')) as { id: string }[];
    await redis().flushdb();

    const log = pino({ level: 'silent' });
    const workers = startWorkers({ connection: q.connection, prefix, knex: db(), log, only: ['reaper'] });
    // A controlled clock: each tick (every 100 ms here) lands in its own window.
    let clock = 0;
    const stop = startReaperTicks(q, log, 100, () => (clock += 100));
    try {
      const job = await until('the lost build job to be back', () => queue(q, 'build').getJob(`build-${row.id}-r1`));
      assert.equal(await job.getState(), 'waiting');
      assert.equal((await Deployment.query(db()).findById(row.id))?.recoveries, 1);
    } finally {
      stop();
      await Promise.all(workers.map((w) => w.close()));
    }
  });

  it('runs once per window however many workers tick', async () => {
    const q = { connection: { url: getConfig().redisUrl, maxRetriesPerRequest: null }, prefix: `t-${randomUUID()}` };
    const log = pino({ level: 'silent' });
    const stops = [1, 2, 3].map(() => startReaperTicks(q, log, REAPER_TICK_MS, () => 5 * REAPER_TICK_MS + 1234));
    try {
      await until('the tick to be added', async () => (await queue(q, 'reaper').getJobCounts('waiting')).waiting > 0);
      assert.deepEqual(
        (await queue(q, 'reaper').getJobs(['waiting'])).map((j) => j.id),
        ['tick-5'],
      );
    } finally {
      stops.forEach((s) => s());
    }
  });
});
