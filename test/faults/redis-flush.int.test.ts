// Redis loses everything mid-deploy (FLUSHDB, and every connection of the workers reset, as a
// Redis restarted without persistence does): the job running the build is gone with its queue,
// and the deployment still goes live within 2 minutes (the reaper ticks every worker adds find
// it from Postgres, the source of truth).
import assert from 'node:assert/strict';
import { redis } from '../../backend/redis.ts';
import { until } from '../local-helpers.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { FaultWorld, figure } from './world.ts';

const WITHIN_MS = 120_000;

describe('faults: Redis flushed mid-deploy', function () {
  this.timeout(WITHIN_MS + 60_000);
  let world: FaultWorld;
  let proxy: TcpProxy;

  beforeEach(async () => {
    world = await new FaultWorld().start();
    await world.createApp();
    const target = new URL(world.config.redisUrl);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
  });
  afterEach(async () => {
    await world.close();
    await proxy.close();
  });

  it('goes live within 2 minutes', async () => {
    world.commitBuild('sleep 2 && echo built');
    const target = new URL(world.config.redisUrl);
    target.host = `${proxy.host}:${proxy.port}`;
    world.startWorker({ redisUrl: target.href });
    let flushed: { done: Promise<unknown>; at: number } | undefined;
    world.onStatus('building', () => {
      flushed = {
        done: redis()
          .flushdb()
          .then(() => proxy.reset()),
        at: Date.now(),
      };
    });
    const id = await world.deploy();
    const { done, at } = await until('Redis to be flushed mid-build', () => flushed, 30_000);
    await done;
    assert.equal(await redis().dbsize(), 0, 'nothing was left in Redis');

    await world.waitFor(id, 'live', WITHIN_MS);
    const took = Date.now() - at;
    figure(`Redis flushed mid-build: live ${(took / 1000).toFixed(1)} s after the flush`);
    assert.ok(took < WITHIN_MS);
    assert.equal((await world.release()).release, '#1');
    await world.assertOneMachine();
  });

  it('goes live within 2 minutes when the worker running the stage dies with the data', async () => {
    // Nothing in Redis says the build is running: only the reaper, reading Postgres, can find it
    // (a stale heartbeat, STALE_AFTER_MS = 20 s, at a tick every 30 s).
    world.commitBuild('sleep 2 && echo built');
    const first = world.startWorker();
    let flushed: { done: Promise<unknown>; at: number } | undefined;
    world.onStatus('building', () => {
      first.kill('SIGKILL');
      flushed = { done: redis().flushdb(), at: Date.now() };
    });
    const id = await world.deploy();
    const { done, at } = await until('Redis to be flushed mid-build', () => flushed, 30_000);
    await done;
    world.startWorker();

    const live = await world.waitFor(id, 'live', WITHIN_MS);
    const took = Date.now() - at;
    figure(`Redis flushed mid-build with its worker killed: live ${(took / 1000).toFixed(1)} s after the flush`);
    assert.ok(took < WITHIN_MS);
    assert.equal(live.recoveries, 1, 'the reaper re-ran the stage once');
    assert.equal((await world.release()).release, '#1');
    await world.assertOneMachine();
  });
});
