// A worker SIGKILLed inside each of the four stages: another worker takes the job over, the stage
// runs again (every stage is safe to repeat), the deployment ends live, the app answers every
// probe meanwhile, and it is left with exactly one machine (no twin from a repeated deploy step).
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { db } from '../../backend/db.ts';
import { Deployment } from '../../backend/models/index.ts';
import { until } from '../local-helpers.ts';
import { startLoad } from '../support/load.ts';
import { FaultWorld, figure, STAGE_STATUSES, type StageName } from './world.ts';

describe('faults: a worker SIGKILLed in each stage', function () {
  this.timeout(90_000);
  let world: FaultWorld;

  beforeEach(async () => {
    world = await new FaultWorld().start();
    await world.createApp();
  });
  afterEach(async () => world.close());

  for (const stage of Object.keys(STAGE_STATUSES) as StageName[]) {
    const status = STAGE_STATUSES[stage];
    it(`killed while ${status}: ends live, 0 failed probes, 1 machine`, async () => {
      const first = world.startWorker();
      const v1 = await world.deploy();
      await world.waitFor(v1, 'live');
      assert.equal((await world.release()).release, '#1');

      world.commitBuild('echo built', 'v2');
      const load = startLoad(world.runtime.routerUrl, 'web.localhost', '/release', 2);
      let killedAt = 0;
      if (stage !== 'deploy') {
        // Frozen the instant the stage is entered (SIGSTOP lands before the stage's first git or
        // shell command ends), checked to be mid-stage, then killed.
        world.onStatus(status, () => first.kill('SIGSTOP'));
      }
      const v2 = await world.deploy();
      if (stage === 'deploy') {
        // Killed once the new machine exists and before it took traffic: mid-release.
        await until('the new machine to be created', async () => (await world.machines('web', `?metadata.rhone_deploy=${v2}`)).length > 0, 30_000);
        first.kill('SIGKILL');
        killedAt = Date.now();
      } else {
        await until(
          'the worker to be frozen mid-stage',
          async () => {
            // Should the published status be missed (publishing is best effort), the row says it too.
            if (!isStopped(first) && (await Deployment.query(db()).findById(v2))?.status === status) first.kill('SIGSTOP');
            return isStopped(first);
          },
          30_000,
        );
        killedAt = Date.now();
      }
      const atKill = await Deployment.query(db()).findById(v2).throwIfNotFound();
      assert.equal(atKill.status, status, 'the kill landed inside the stage');
      assert.equal(atKill.stageTimings[stage]?.finishedAt, undefined, 'the stage had not finished');
      if (stage !== 'deploy') first.kill('SIGKILL');
      world.startWorker();

      const live = await world.waitFor(v2, 'live', 60_000);
      const recovered = Date.now() - killedAt;
      const result = await load.stop();
      assert.equal(result.failed, 0, `probes failed while the worker died: ${result.failures.slice(0, 5).join('; ')}`);
      assert.ok(result.ok > 0, 'the probe ran');
      assert.equal((await world.release()).release, '#2');
      assert.ok(live.stageTimings.deploy?.finishedAt);
      await world.assertOneMachine();
      figure(`killed while ${status}: live ${(recovered / 1000).toFixed(1)} s after the kill; ${result.ok} probes, ${result.failed} failed`);
    });
  }
});

/** The process is stopped (SIGSTOP): state T in /proc (Linux). */
function isStopped(child: ChildProcess): boolean {
  try {
    return /\) T/.test(readFileSync(`/proc/${child.pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
