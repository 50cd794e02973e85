// Deleting an app removes its Fly app too: machines stopped and destroyed, the app gone from the
// Machines API (the local runtime here, through the real Fly client). The teardown is written in
// the app's deletion transaction, so a lost job is redone by the reaper's sweep.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { getConfig, type Config } from '../backend/config.ts';
import { db } from '../backend/db.ts';
import { Deployment, Team } from '../backend/models/index.ts';
import { FlyClient } from '../backend/providers/fly/client.ts';
import { flyNetworkForApp } from '../backend/providers/fly/names.ts';
import { machineConfig } from '../backend/releases/machine-config.ts';
import { sweepTeardowns, tearDown } from '../jobs/processors/app-teardown.ts';
import { queue, type QueueContext } from '../jobs/queues.ts';
import { makeApp, makeUser } from './factories.ts';
import { signedIn, startTestServer, type TestServer } from './http.ts';
import { IMAGE, useRuntime } from './local-helpers.ts';
import { dbFingerprint } from './db-state.ts';

describe('deleting an app tears down its Fly app', function () {
  this.timeout(30_000);
  const rt = useRuntime();
  let server: TestServer;
  let config: Config;
  let queues: QueueContext;

  beforeEach(async () => {
    config = { ...getConfig(), dataDir: rt.dataDir, machinesPort: Number(new URL(rt.local.machinesUrl).port) };
    queues = { connection: { url: config.redisUrl, maxRetriesPerRequest: null }, prefix: `test-${randomUUID()}` };
    server = await startTestServer({ config, queues });
  });
  afterEach(() => server.close());

  /** A Fly app as the build stage makes it: under the stored name, in the app's own network (its mark). */
  async function runningApp(app: { id: string; flyAppName: string }, network = flyNetworkForApp(app.id)) {
    const fly = new FlyClient({ baseUrl: rt.local.machinesUrl, token: rt.local.token });
    const flyApp = app.flyAppName;
    await fly.createApp({ name: flyApp, org_slug: 'personal', network, idempotency_key: randomUUID() });
    const m = await fly.createMachine(flyApp, {
      region: 'local',
      config: machineConfig({
        image: IMAGE,
        appId: 'a1',
        deploymentId: 'd1',
        launchId: 'd1:0',
        settings: { region: 'local', machineSize: 'shared-cpu-1x', internalPort: 8080, healthCheckPath: '/health', instanceCount: 1 },
        checkTiming: { interval: '200ms', timeout: '1s', gracePeriod: '0s' },
      }),
    });
    await fly.waitForState(flyApp, m.id, 'started', { timeoutMs: 10_000 });
    return { fly, flyApp };
  }

  it('deletes the app, then its job removes the Fly app and its machines; running it again is harmless', async () => {
    const ada = await makeUser('ada');
    const team = await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound();
    const app = await makeApp(ada, team, 'shop');
    const { fly, flyApp } = await runningApp(app);

    const client = await signedIn(server.url, 'ada');
    assert.equal((await client.delete('/api/apps/shop')).status, 204);
    const [row] = await db()('appTeardowns').select('*');
    assert.deepEqual([row.appSlug, row.flyApp, row.doneAt], ['shop', flyApp, null]);
    // Its job is waiting in the queue (the worker is not part of this test).
    assert.ok(await queue(queues, 'appTeardown').getJob(`teardown-${row.id}-0`));

    assert.equal(await tearDown(db(), config, row.id), 'done');
    assert.equal(await fly.getApp(flyApp), null);
    assert.ok((await db()('appTeardowns').where({ id: row.id }).first()).doneAt);
    assert.equal(await tearDown(db(), config, row.id), 'already-done');
  });

  it('does not delete a Fly app whose mark names another Rhone app (a newer app under that name)', async () => {
    const ada = await makeUser('ada');
    const team = await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound();
    const app = await makeApp(ada, team, 'shop');
    // The Fly app under this name is in another Rhone app's network: it is that app's, not this one's.
    const other = randomUUID();
    const { fly, flyApp } = await runningApp(app, flyNetworkForApp(other));
    const client = await signedIn(server.url, 'ada');
    assert.equal((await client.delete('/api/apps/shop')).status, 204);
    const [row] = await db()('appTeardowns').select('*');
    assert.equal(row.appId, app.id);
    assert.equal(await tearDown(db(), config, row.id), 'refused');
    assert.ok(await fly.getApp(flyApp), "the other app's Fly app is still there");
    const after = await db()('appTeardowns').where({ id: row.id }).first();
    assert.ok(after.doneAt, 'nothing is left to do for this app');
    assert.match(after.lastError, new RegExp(`^Did not delete the Fly app ${flyApp}: it is not this app's`));
  });

  it('refuses to delete an app while a deployment is in flight, and changes nothing', async () => {
    const ada = await makeUser('ada');
    const team = await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound();
    const app = await makeApp(ada, team, 'shop');
    await Deployment.query(db()).insert({
      appId: app.id,
      number: 1,
      status: 'building',
      stage: 'build',
      trigger: 'manual',
      configSnapshot: {} as never,
      triggeredBy: ada.id,
    });
    const client = await signedIn(server.url, 'ada');
    const before = await dbFingerprint();
    const res = await client.delete('/api/apps/shop');
    assert.equal(res.status, 409);
    assert.match(res.body.message, /#1 of shop is building; cancel it/);
    assert.deepEqual(await dbFingerprint(), before);
  });

  it('a teardown whose job was lost is enqueued again by the reaper after a minute, once', async () => {
    const team = await Team.query(db())
      .findOne({ slug: (await makeUser('ada')).login })
      .throwIfNotFound();
    const [row] = await db()('appTeardowns')
      .insert({ teamId: team.id, appSlug: 'gone', flyApp: 'rhone-gone', requestedAt: new Date(Date.now() - 120_000) })
      .returning('*');
    const log = pino({ level: 'silent' });
    assert.equal(await sweepTeardowns(db(), queues, log), 1);
    assert.ok(await queue(queues, 'appTeardown').getJob(`teardown-${row.id}-1`));
    // Its job is now waiting: the next sweep leaves it alone.
    assert.equal(await sweepTeardowns(db(), queues, log), 0);
    // A Fly app that is already gone counts as torn down.
    assert.equal(await tearDown(db(), config, row.id), 'done');
    assert.equal(await sweepTeardowns(db(), queues, log), 0);
  });
});
