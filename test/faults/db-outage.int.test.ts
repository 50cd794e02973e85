// The database goes away for 10 s while a build runs (the workers reach it through a TCP proxy
// that refuses connections and resets the open ones, as a restarting Postgres does): the build
// runs once, its log is complete, and the deployment goes live once the database is back.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { db } from '../../backend/db.ts';
import { until } from '../local-helpers.ts';
import { startDatabaseProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { FaultWorld, figure } from './world.ts';

const OUTAGE_MS = 10_000;

describe('faults: the database down for 10 s mid-build', function () {
  this.timeout(90_000);
  let world: FaultWorld;
  let proxy: TcpProxy;
  let databaseUrl: string;

  beforeEach(async () => {
    world = await new FaultWorld().start();
    await world.createApp();
    ({ proxy, url: databaseUrl } = await startDatabaseProxy(world.config.databaseUrl));
  });
  afterEach(async () => {
    await world.close();
    await proxy.close();
  });

  it('runs the build once and the deployment goes live', async () => {
    // Each run of the build command adds a line to a file outside the build's directory.
    const runs = path.join(mkdtempSync(path.join(os.tmpdir(), 'rhone-builds-')), 'runs');
    world.commitBuild(`echo started >> ${runs} && sleep 3 && echo built-once`);
    world.startWorker({ databaseUrl });
    let down: { done: Promise<void> } | undefined;
    world.onStatus('building', () => (down = { done: proxy.setMode('refuse') }));
    const id = await world.deploy();
    await (
      await until('the database to go down mid-build', () => down, 30_000)
    ).done;
    await sleep(OUTAGE_MS); // the fault itself: how long the database stays away
    await proxy.setMode('pass');
    const back = Date.now();

    const live = await world.waitFor(id, 'live', 60_000);
    figure(`database down ${OUTAGE_MS / 1000} s mid-build: live ${((Date.now() - back) / 1000).toFixed(1)} s after it came back`);
    assert.equal(readFileSync(runs, 'utf8'), 'started\n', 'the build command ran once');
    assert.equal(live.recoveries, 0, 'the reaper did not re-run a stage');
    const lines = (await db()('deployment_events').where({ deploymentId: id, type: 'log' }).orderBy('seq').pluck('data')) as { line: string }[];
    assert.equal(lines.filter((l) => l.line.trim() === 'built-once').length, 1, 'the build output is stored once');
    const seqs = await world.storedSeqs(id);
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => i + 1),
      'no gap in the events',
    );
    assert.equal((await world.release()).release, '#1');
    await world.assertOneMachine();
  });
});
