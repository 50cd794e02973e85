// A database outage while a stage runs costs nothing but time: the log lines written during it
// are stored once it is back (in order, none lost, none twice), and the finished stage settles
// and hands over to the next one instead of failing, so its work is never done twice.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Job } from 'bullmq';
import type { Knex } from 'knex';
import { pino } from 'pino';
import { getConfig } from '../backend/config.ts';
import { createKnex, db } from '../backend/db.ts';
import { Deployment, Team } from '../backend/models/index.ts';
import { takeSnapshot } from '../backend/deployments/snapshot.ts';
import { queue } from '../jobs/queues.ts';
import { stageProcessor, type StageDefinition } from '../jobs/stage.ts';
import { makeApp, makeUser } from './factories.ts';
import { startDatabaseProxy, type TcpProxy } from './support/tcp-proxy.ts';

describe('a pipeline stage during a database outage', function () {
  this.timeout(30_000);
  let proxy: TcpProxy;
  let knex: Knex;

  beforeEach(async () => {
    let url: string;
    ({ proxy, url } = await startDatabaseProxy(getConfig().databaseUrl));
    knex = createKnex(url);
  });
  afterEach(async () => {
    await proxy.close();
    await knex.destroy();
  });

  it('stores the lines written during the outage once it ends, and settles the finished stage once', async () => {
    const owner = await makeUser('ada');
    const team = await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound();
    const app = await makeApp(owner, team, 'web');
    const [row] = (await db()('deployments')
      .insert({
        appId: app.id,
        number: 1,
        status: 'queued',
        trigger: 'manual',
        commitSha: 'a'.repeat(40),
        configSnapshot: JSON.stringify(await takeSnapshot(db(), app)),
      })
      .returning('id')) as { id: string }[];
    const queues = { connection: { url: getConfig().redisUrl, maxRetriesPerRequest: null }, prefix: `t-${randomUUID()}` };

    let runs = 0;
    const def: StageDefinition = {
      stage: 'build',
      next: 'deploy',
      async run(ctx) {
        runs++;
        ctx.log('before the outage');
        await proxy.setMode('refuse'); // the database goes away mid-build…
        for (let i = 0; i < 50; i++) ctx.log(`during the outage ${i}`);
        // …and comes back a little later, while the stage is settling.
        setTimeout(() => void proxy.setMode('pass'), 1500).unref();
        return { image: 'rhone-local/web:built' } as Partial<Deployment>;
      },
    };
    const processJob = stageProcessor(def, { knex, config: getConfig(), queues, log: pino({ level: process.env.DEBUG_STAGE ? 'debug' : 'silent' }) });
    const job = { id: `build-${row.id}`, data: { deploymentId: row.id }, attemptsMade: 0, opts: { attempts: 2 } } as unknown as Job;
    assert.deepEqual(await processJob(job), { ok: true });

    assert.equal(runs, 1, 'the build ran once');
    const lines = (await db()('deployment_events').where({ deploymentId: row.id, type: 'log' }).orderBy('seq').select('data')).map(
      (r: { data: { line: string } }) => r.data.line,
    );
    assert.deepEqual(lines, ['before the outage', ...Array.from({ length: 50 }, (_, i) => `during the outage ${i}`)]);
    const seqs = (await db()('deployment_events').where({ deploymentId: row.id }).orderBy('seq').pluck('seq')) as number[];
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => i + 1),
      'no gap in the sequence',
    );
    const d = await Deployment.query(db()).findById(row.id).throwIfNotFound();
    assert.equal(d.image, 'rhone-local/web:built');
    assert.ok(d.stageTimings.build?.finishedAt, 'the build stage is recorded as finished');
    assert.ok(await queue(queues, 'deploy').getJob(`deploy-${row.id}`), 'the deploy stage is next');
  });
});
