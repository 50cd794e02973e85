// Two apis and two workers, as production runs them; the worker running the build is SIGKILLed.
// The other worker takes the job over (nothing is restarted), a viewer on the other api sees the
// whole deployment without a gap, the app answers every probe, and it ends with one machine.
import assert from 'node:assert/strict';
import { until } from '../local-helpers.ts';
import { apiProcess } from '../support/api-process.ts';
import { startLoad } from '../support/load.ts';
import { SseClient } from '../support/sse.ts';
import { descendants, FaultWorld, figure } from './world.ts';

describe('faults: 2 apis + 2 workers, one worker killed', function () {
  this.timeout(90_000);
  let world: FaultWorld;

  beforeEach(async () => {
    world = await new FaultWorld().start();
    await world.createApp();
  });
  afterEach(async () => world.close());

  it('the other worker finishes the deployment; the viewer on the other api misses nothing', async () => {
    const workers = [world.startWorker(), world.startWorker()];
    const other = await apiProcess();
    world.children.push(other.child);
    const v1 = await world.deploy();
    await world.waitFor(v1, 'live');

    world.commitBuild('sleep 3 && echo built', 'v2');
    const load = startLoad(world.runtime.routerUrl, 'web.localhost', '/release', 2);
    const cookie = [...world.ada.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const v2 = await world.deploy();
    const viewer = await SseClient.connect(`${other.url}/api/deployments/${v2}/events`, { headers: { cookie } });
    assert.equal(viewer.status, 200, viewer.body);
    // The worker whose process tree holds the build's `sleep` is the one running it.
    const busy = await until('a worker to be running the build', () => workers.find((w) => descendants(w.pid!).some((p) => p.comm === 'sleep')), 30_000);
    busy.kill('SIGKILL');
    const killedAt = Date.now();

    await world.waitFor(v2, 'live', 60_000);
    const recovered = Date.now() - killedAt;
    await viewer.waitFor((c) => c.done, 10_000, 'the stream to end');
    const result = await load.stop();
    assert.equal(result.failed, 0, `probes failed: ${result.failures.slice(0, 5).join('; ')}`);
    assert.deepEqual(
      viewer.events.map((e) => e.seq),
      await world.storedSeqs(v2),
      'the viewer got every event once',
    );
    assert.ok(viewer.events.some((e) => e.data.includes('"live"')));
    assert.equal((await world.release()).release, '#2');
    await world.assertOneMachine();
    const survivor = workers.find((w) => w !== busy)!;
    assert.equal(survivor.exitCode, null, 'the surviving worker is still running');
    figure(
      `2 apis + 2 workers: live ${(recovered / 1000).toFixed(1)} s after the build's worker was killed; ${result.ok} probes, ${result.failed} failed; viewer got ${viewer.events.length} events`,
    );
  });
});
