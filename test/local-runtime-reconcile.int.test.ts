// The local runtime's state machine at its edges (restart policies, failures, updates of stopped
// machines) and its recovery: after a crash it takes over the processes that survived and brings
// back what died, without leaving a process behind or starting one twice.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { startLocalRuntime } from '../local/main.ts';
import { FlyApi, appConfig, healthy, isAlive, useRuntime, until, viaRouter } from './local-helpers.ts';

/** Pids of live processes started for a machine (found by FLY_MACHINE_ID in their env; Linux). */
function processesOf(machineId: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(`FLY_MACHINE_ID=${machineId}`)) {
        const state = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.[0];
        if (state !== 'Z') pids.push(Number(entry));
      }
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return pids;
}

describe('local runtime: state machine edges and reconcile', function () {
  this.timeout(30_000);
  const rt = useRuntime();

  const pidVia = async (host: string) => JSON.parse((await viaRouter(rt.local, host)).body).pid as number;

  it('after a crash, takes over the processes that survived and restarts only the machine whose process died', async function () {
    if (!existsSync('/proc/self/environ')) this.skip(); // counting processes needs Linux's /proc
    const app = await rt.api.createApp('rhone-shop');
    const kept = await rt.api.createMachine(app, { config: appConfig() });
    const died = await rt.api.createMachine(app, { config: appConfig() });
    await healthy(rt.api, app, kept.id);
    await healthy(rt.api, app, died.id);
    const [oldKept] = processesOf(kept.id);
    const [oldDied] = processesOf(died.id);
    assert.ok(oldKept && oldDied);

    await rt.local.close({ leaveMachinesRunning: true });
    assert.ok(isAlive(oldKept), 'a crash leaves the processes running');
    process.kill(oldDied, 'SIGKILL'); // and one of them dies while no runtime watches
    await until('the process to be gone', () => !isAlive(oldDied));
    rt.local = await startLocalRuntime({ dataDir: rt.dataDir, machinesPort: 0, routerPort: 0 });
    rt.api = new FlyApi(rt.local.machinesUrl, `Bearer ${rt.local.token}`);

    // The survivor is the same process, so whatever it held in memory is still there.
    assert.deepEqual(processesOf(kept.id), [oldKept]);
    const keptNow = await healthy(rt.api, app, kept.id);
    assert.equal(keptNow.state, 'started');
    const diedNow = await healthy(rt.api, app, died.id);
    assert.equal(diedNow.state, 'started');
    const restarted = processesOf(died.id);
    assert.equal(restarted.length, 1, `one process for the machine, got ${restarted.join(', ')}`);
    assert.notEqual(restarted[0], oldDied);
    const pids = new Set<number>();
    for (let i = 0; i < 6; i++) pids.add(await pidVia('shop.localhost'));
    assert.deepEqual([...pids].sort(), [oldKept, restarted[0]].sort(), 'the router serves both machines');

    // The adopted process is watched: when it dies now, it is restarted (policy always).
    process.kill(oldKept, 'SIGKILL');
    await until('the adopted machine to be restarted', () => {
      const now = processesOf(kept.id);
      return now.length === 1 && now[0] !== oldKept;
    });
    const stopped = await rt.api.call('POST', '/v1/apps/{app_name}/machines/{machine_id}/stop', { params: { app_name: app, machine_id: died.id } });
    assert.equal(stopped.status, 200);
    await rt.api.wait(app, died.id, 'stopped', 10);
  });

  it('after a crash, kills the leftover process of a machine that was being stopped', async function () {
    if (!existsSync('/proc/self/environ')) this.skip();
    const app = await rt.api.createApp('rhone-stubborn');
    const m = await rt.api.createMachine(app, { config: appConfig({ env: { IGNORE_SIGTERM: '1' } }) });
    await healthy(rt.api, app, m.id);
    const [pid] = processesOf(m.id);
    await rt.api.call('POST', '/v1/apps/{app_name}/machines/{machine_id}/stop', {
      params: { app_name: app, machine_id: m.id },
      body: { signal: 'SIGTERM', timeout: '30s' },
    });
    await until('the machine to be stopping', async () => (await rt.api.machine(app, m.id)).state === 'stopping');
    await rt.local.close({ leaveMachinesRunning: true });
    rt.local = await startLocalRuntime({ dataDir: rt.dataDir, machinesPort: 0, routerPort: 0 });
    rt.api = new FlyApi(rt.local.machinesUrl, `Bearer ${rt.local.token}`);
    assert.equal(isAlive(pid), false);
    assert.equal((await rt.api.machine(app, m.id)).state, 'stopped');
  });

  it('stops machines gracefully on close and starts them again on the next start', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const m = await rt.api.createMachine(app, { config: appConfig() });
    await healthy(rt.api, app, m.id);
    const before = await pidVia('shop.localhost');
    await rt.local.close();
    assert.equal(isAlive(before), false);
    const log = readFileSync(path.join(rt.dataDir, 'machines', m.id, 'machine.log'), 'utf8');
    assert.match(log, /got SIGTERM, shutting down/);
    assert.equal(statSync(path.join(rt.dataDir, 'machines', 'state.json')).mode & 0o777, 0o600);

    rt.local = await startLocalRuntime({ dataDir: rt.dataDir, machinesPort: 0, routerPort: 0 });
    rt.api = new FlyApi(rt.local.machinesUrl, `Bearer ${rt.local.token}`);
    await healthy(rt.api, app, m.id);
    assert.notEqual(await pidVia('shop.localhost'), before);
  });

  it('marks a machine failed when its process exits at once and its policy gives up', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const no = await rt.api.createMachine(app, { config: appConfig({ env: { EXIT_CODE: '3' }, restart: { policy: 'no' } }) });
    const waited = await rt.api.wait(app, no.id, 'failed');
    assert.equal(waited.body.state, 'failed');
    const [exit] = await rt.api.events(app, no.id);
    assert.deepEqual([exit.type, exit.status, exit.request.exit_event.exit_code], ['exit', 'failed', 3]);

    const retried = await rt.api.createMachine(app, { config: appConfig({ env: { EXIT_CODE: '1' }, restart: { policy: 'on-failure', max_retries: 2 } }) });
    await rt.api.wait(app, retried.id, 'failed');
    const starts = (await rt.api.events(app, retried.id)).filter((e) => e.type === 'start' && e.status === 'started');
    assert.equal(starts.length, 3, 'the first start and two retries');

    const clean = await rt.api.createMachine(app, { config: appConfig({ env: { EXIT_CODE: '0' }, restart: { policy: 'on-failure' } }) });
    assert.equal((await rt.api.wait(app, clean.id, 'stopped')).body.state, 'stopped');

    const unspawnable = await rt.api.createMachine(app, { config: appConfig({ init: { exec: ['/nonexistent/rhone-binary'] } }) });
    await rt.api.wait(app, unspawnable.id, 'failed');
    const [failure] = await rt.api.events(app, unspawnable.id);
    assert.match(String(failure.request.error), /ENOENT/);
  });

  it('starts a stopped machine on update unless skip_launch, and starts and restarts on request', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const m = await rt.api.createMachine(app, { config: appConfig(), skip_launch: true });
    assert.equal(m.state, 'created');
    const params = { app_name: app, machine_id: m.id };
    const kept = await rt.api.call('POST', '/v1/apps/{app_name}/machines/{machine_id}', {
      params,
      body: { config: appConfig({ env: { RELEASE: 'v2' } }), skip_launch: true },
    });
    assert.equal(kept.body.state, 'created');
    const started = await rt.api.call('POST', '/v1/apps/{app_name}/machines/{machine_id}/start', { params });
    assert.equal(started.body.previous_state, 'created');
    await healthy(rt.api, app, m.id);
    const first = await pidVia('shop.localhost');
    assert.equal(JSON.parse((await viaRouter(rt.local, 'shop.localhost')).body).release, 'v2');

    const restarted = await rt.api.call('POST', '/v1/apps/{app_name}/machines/{machine_id}/restart', { params, query: { signal: 'SIGTERM', timeout: '5s' } });
    assert.equal(restarted.status, 200);
    const second = await until('a new process', async () => {
      const res = await viaRouter(rt.local, 'shop.localhost');
      return res.status === 200 && JSON.parse(res.body).pid !== first ? JSON.parse(res.body).pid : undefined;
    });
    assert.equal(isAlive(first), false);
    assert.ok(isAlive(second));

    await rt.api.call('POST', '/v1/apps/{app_name}/machines/{machine_id}/stop', { params });
    await rt.api.wait(app, m.id, 'stopped', 10, kept.body.version);
    await rt.api.call('POST', '/v1/apps/{app_name}/machines/{machine_id}', { params, body: { config: appConfig({ env: { RELEASE: 'v3' } }) } });
    await healthy(rt.api, app, m.id);
    assert.equal(JSON.parse((await viaRouter(rt.local, 'shop.localhost')).body).release, 'v3');
  });
});
