// The local runtime (its own process, as `npm start` runs it) is SIGKILLed while two apps serve,
// and one app's process dies while no runtime watches. The restarted runtime re-adopts the process
// that outlived it (the same process, so the sessions it holds in memory are kept) and brings the
// other app back.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { isAlive, until } from '../local-helpers.ts';
import { freePort } from '../support/rhone-process.ts';
import { machinesToken } from '../../local/token.ts';
import { get } from '../support/load.ts';
import { FaultWorld, figure, ROOT, workerEnv } from './world.ts';

describe('faults: the local runtime killed', function () {
  this.timeout(90_000);
  let world: FaultWorld;
  let runtime: ChildProcess | undefined;
  let ports: { machinesUrl: string; routerUrl: string };

  async function startRuntime(): Promise<void> {
    runtime = spawn(process.execPath, ['--import', 'tsx', 'local/main.ts'], { cwd: ROOT, env: workerEnv(world.config, world.dataDir, ports), stdio: 'ignore' });
    world.children.push(runtime);
    await until(
      'the runtime to listen',
      async () =>
        (await fetch(`${ports.machinesUrl}/v1/apps`).then(
          (r) => r.status,
          () => 0,
        )) !== 0,
      30_000,
    );
    world.runtime = { ...ports, token: machinesToken(world.dataDir) };
  }

  beforeEach(async () => {
    world = await new FaultWorld().start({ inProcessRuntime: false });
    ports = { machinesUrl: `http://127.0.0.1:${await freePort()}`, routerUrl: `http://127.0.0.1:${await freePort()}` };
    await startRuntime();
    await world.createApp('web');
    await world.createApp('shop');
  });
  afterEach(async () => {
    // A graceful stop, so the runtime stops the apps' processes too.
    if (runtime && runtime.exitCode === null && runtime.signalCode === null) {
      runtime.kill('SIGTERM');
      await once(runtime, 'exit');
    }
    await world.close();
  });

  it('apps back, sessions kept where the process survived', async () => {
    world.startWorker();
    const [web, shop] = [await world.deploy('web'), await world.deploy('shop')];
    await world.waitFor(web, 'live');
    await world.waitFor(shop, 'live');
    const before = { web: (await world.release('web')).pid, shop: (await world.release('shop')).pid };

    runtime!.kill('SIGKILL');
    await once(runtime!, 'exit');
    assert.ok(isAlive(before.web) && isAlive(before.shop), 'the apps outlive the runtime');
    process.kill(before.shop, 'SIGKILL'); // and one dies while nothing watches
    await until('the shop process to be gone', () => !isAlive(before.shop));
    const restartedAt = Date.now();
    await startRuntime();

    const answers = async (slug: string) => {
      const res = await get(ports.routerUrl, `${slug}.localhost`, '/release').catch(() => undefined);
      return res?.status === 200 ? (JSON.parse(res.body) as { pid: number }).pid : undefined;
    };
    const after = { web: await until('web to answer', () => answers('web'), 30_000), shop: await until('shop to answer', () => answers('shop'), 30_000) };
    const back = Date.now() - restartedAt;
    assert.equal(after.web, before.web, 'the process that survived serves on: its sessions are kept');
    assert.notEqual(after.shop, before.shop, 'the process that died was started again');
    await world.assertOneMachine('web');
    await world.assertOneMachine('shop');
    figure(`runtime SIGKILLed: both apps answer ${(back / 1000).toFixed(1)} s after it restarted (web re-adopted, pid ${after.web}; shop restarted)`);
  });
});
