// The local runtime end to end: machines as real processes behind the Host-header router.
// Every Machines API answer is checked against Fly's spec (test/local-helpers.ts).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import WebSocket from 'ws';
import { appConfig, healthy, isAlive, useRuntime, until, viaRouter } from './local-helpers.ts';

const M = '/v1/apps/{app_name}/machines/{machine_id}';

describe('local runtime: machines and router', function () {
  this.timeout(30_000);
  const rt = useRuntime();

  const who = async (host = 'shop.localhost') => {
    const res = await viaRouter(rt.local, host);
    assert.equal(res.status, 200, res.body);
    return JSON.parse(res.body) as { machine: string; pid: number; release: string | null; forwarded: Record<string, string>; host: string };
  };

  it('starts a machine, passes its checks, and serves it at {slug}.localhost', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const created = await rt.api.createMachine(app, { config: appConfig({ env: { RELEASE: 'v1' } }) });
    assert.ok(['created', 'starting'].includes(created.state));
    assert.match(created.version, /^[0-9A-Z]{26}$/);
    const wait = await rt.api.wait(app, created.id, 'started');
    assert.deepEqual([wait.status, wait.body.ok, wait.body.state], [200, true, 'started']);

    const m = await healthy(rt.api, app, created.id);
    assert.equal(m.checks[0].name, 'servicecheck-00-http-8080');
    assert.equal(m.private_ip, '127.0.0.1');

    const body = await who();
    assert.equal(body.machine, created.id);
    assert.equal(body.release, 'v1');
    assert.equal(body.host, 'shop.localhost');
    assert.equal(body.forwarded.host, 'shop.localhost');
    assert.equal(body.forwarded.proto, 'http');
    assert.equal(body.forwarded.for, '127.0.0.1');

    const bandwidth = await rt.api.localExtension(`/v1/apps/${app}/local/bandwidth`);
    assert.ok(bandwidth.bytes_out > 200, 'the router counts the bytes it sent');

    const events = await rt.api.events(app, created.id);
    assert.deepEqual(
      events
        .slice(0, 3)
        .map((e) => [e.type, e.status])
        .reverse(),
      [
        ['launch', 'created'],
        ['start', 'starting'],
        ['start', 'started'],
      ],
    );
    assert.ok(
      events.every((e) => e.timestamp > 1e12 && e.timestamp < 1e13),
      'timestamps are in milliseconds',
    );
  });

  it('sends no traffic to a cordoned machine, and spreads it once uncordoned', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const a = await rt.api.createMachine(app, { config: appConfig() });
    const b = await rt.api.createMachine(app, { config: appConfig(), skip_service_registration: true });
    assert.equal(b.cordoned, true);
    await healthy(rt.api, app, a.id);
    await healthy(rt.api, app, b.id);
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) seen.add((await who()).machine);
    assert.deepEqual([...seen], [a.id]);

    const un = await rt.api.call('POST', `${M}/uncordon`, { params: { app_name: app, machine_id: b.id } });
    assert.equal(un.status, 200);
    for (let i = 0; i < 8; i++) seen.add((await who()).machine);
    assert.deepEqual([...seen].sort(), [a.id, b.id].sort());
  });

  it('answers unknown hosts with a 404 page and an app without a healthy machine with a 503 page', async () => {
    const unknown = await viaRouter(rt.local, 'nothing.localhost');
    assert.equal(unknown.status, 404);
    assert.match(unknown.body, /No app is deployed at <code>nothing\.localhost<\/code>/);

    const app = await rt.api.createApp('rhone-sick');
    const m = await rt.api.createMachine(app, { config: appConfig({ env: { HEALTH: 'fail' } }) });
    await rt.api.wait(app, m.id, 'started');
    await until('a failed check', async () => (await rt.api.machine(app, m.id)).checks[0].output.includes('500'));
    const sick = await rt.api.machine(app, m.id);
    assert.equal(sick.checks[0].status, 'critical');
    const page = await viaRouter(rt.local, 'sick.localhost');
    assert.equal(page.status, 503);
    assert.match(page.body, /rhone-sick<\/code> has no healthy machine right now/);
  });

  it('stops with the given signal, then SIGKILLs after the timeout', async () => {
    const app = await rt.api.createApp('rhone-stubborn');
    const m = await rt.api.createMachine(app, { config: appConfig({ env: { IGNORE_SIGTERM: '1' } }) });
    await healthy(rt.api, app, m.id);
    const { pid } = await who('stubborn.localhost');
    const started = Date.now();
    const stop = await rt.api.call('POST', `${M}/stop`, { params: { app_name: app, machine_id: m.id }, body: { signal: 'SIGTERM', timeout: '1s' } });
    assert.equal(stop.status, 200);
    const stopped = await rt.api.wait(app, m.id, 'stopped', 10, m.version);
    const took = Date.now() - started;
    assert.equal(stopped.body.state, 'stopped');
    assert.ok(took >= 900 && took < 4000, `stopped after ${took} ms`);
    assert.equal(isAlive(pid), false);
    const log = await readFile(path.join(rt.dataDir, 'machines', m.id, 'machine.log'), 'utf8');
    assert.match(log, /got SIGTERM, ignoring it/);
    const tail = await rt.api.localExtension(`/v1/apps/${app}/machines/${m.id}/logs?tail=2`);
    assert.equal(tail.trim().split('\n').length, 2);
    assert.match(tail, /process exited \(signal SIGKILL\)/);
    const [exit] = await rt.api.events(app, m.id);
    assert.deepEqual([exit.type, exit.status, exit.request.exit_event.signal], ['exit', 'stopped', 'SIGKILL']);
    // An explicit stop is final, even with restart policy always.
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await rt.api.machine(app, m.id)).state, 'stopped');
  });

  it('restarts a machine whose process was SIGKILLed (policy always), and the router recovers', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const m = await rt.api.createMachine(app, { config: appConfig() });
    await healthy(rt.api, app, m.id);
    const before = await who();
    process.kill(before.pid, 'SIGKILL');
    const after = await until('the restarted process to answer', async () => {
      const res = await viaRouter(rt.local, 'shop.localhost');
      return res.status === 200 && JSON.parse(res.body).pid !== before.pid ? JSON.parse(res.body) : undefined;
    });
    assert.equal(after.machine, m.id);
    const exit = (await rt.api.events(app, m.id)).find((e) => e.type === 'exit');
    assert.equal(exit.request.exit_event.restarting, true);
    assert.equal((await rt.api.machine(app, m.id)).state, 'started');
  });

  it('updates with the current version only, replacing the process and changing the version', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const m = await rt.api.createMachine(app, { config: appConfig({ env: { RELEASE: 'v1' } }) });
    await healthy(rt.api, app, m.id);
    const params = { app_name: app, machine_id: m.id };
    const stale = await rt.api.call('POST', M, {
      params,
      body: { config: appConfig({ env: { RELEASE: 'v2' } }), current_version: '01ARZ3NDEKTSV4RRFFQ69G5FAV' },
    });
    assert.equal(stale.status, 409);
    assert.match(stale.body.error, /stale/);

    const updated = await rt.api.call('POST', M, { params, body: { config: appConfig({ env: { RELEASE: 'v2' } }), current_version: m.version } });
    assert.equal(updated.status, 200);
    assert.notEqual(updated.body.version, m.version);
    await rt.api.wait(app, m.id, 'started', 10, updated.body.version);
    await healthy(rt.api, app, m.id);
    assert.equal((await who()).release, 'v2');
  });

  it('answers 408 when a wait runs out', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const m = await rt.api.createMachine(app, { config: appConfig() });
    await rt.api.wait(app, m.id, 'started');
    const started = Date.now();
    const res = await rt.api.wait(app, m.id, 'stopped', 1, m.version);
    assert.equal(res.status, 408);
    assert.ok(Date.now() - started >= 900);
  });

  it('refuses to destroy a started machine without force, and destroys it with force', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const m = await rt.api.createMachine(app, { config: appConfig() });
    await rt.api.wait(app, m.id, 'started');
    const params = { app_name: app, machine_id: m.id };
    const refused = await rt.api.call('DELETE', M, { params });
    assert.equal(refused.status, 412);
    assert.equal((await rt.api.call('DELETE', M, { params, query: { force: true } })).status, 200);
    assert.equal((await rt.api.wait(app, m.id, 'destroyed')).body.state, 'destroyed');
    const list = await rt.api.call('GET', '/v1/apps/{app_name}/machines', { params: { app_name: app } });
    assert.deepEqual(list.body, []);
    const withDeleted = await rt.api.call('GET', '/v1/apps/{app_name}/machines', { params: { app_name: app }, query: { include_deleted: true } });
    assert.deepEqual(
      withDeleted.body.map((x: { state: string }) => x.state),
      ['destroyed'],
    );
  });

  it('serves a hostname with an active certificate (www.shop.localhost is active at once)', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const m = await rt.api.createMachine(app, { config: appConfig() });
    await healthy(rt.api, app, m.id);
    const cert = await rt.api.call('POST', '/v1/apps/{app_name}/certificates/acme', { params: { app_name: app }, body: { hostname: 'www.shop.localhost' } });
    assert.equal(cert.status, 201);
    assert.equal(cert.body.status, 'active');
    assert.equal((await who('www.shop.localhost')).machine, m.id);

    const pending = await rt.api.call('POST', '/v1/apps/{app_name}/certificates/acme', {
      params: { app_name: app },
      body: { hostname: 'shop.example.invalid' },
    });
    assert.equal(pending.body.status, 'pending_validation');
    const check = await rt.api.call('POST', '/v1/apps/{app_name}/certificates/{hostname}/check', {
      params: { app_name: app, hostname: 'shop.example.invalid' },
    });
    assert.equal(check.body.status, 'pending_validation');
    assert.equal((await viaRouter(rt.local, 'shop.example.invalid')).status, 404);
  });

  it('proxies WebSocket upgrades', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const m = await rt.api.createMachine(app, { config: appConfig() });
    await healthy(rt.api, app, m.id);
    const ws = new WebSocket(`${rt.local.routerUrl.replace('http', 'ws')}/ws`, { headers: { host: 'shop.localhost' } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const reply = new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))));
    ws.send('ping');
    assert.equal(await reply, `${m.id}:ping`);
    ws.close();
  });

  it('retries a request on another machine when its machine refuses the connection', async () => {
    const app = await rt.api.createApp('rhone-shop');
    // One check right after boot, then none for a minute: a machine that stops listening still
    // looks healthy, as one that is going away does until the proxy learns it.
    const config = appConfig();
    Object.assign(config.services![0].checks![0], { interval: '60s', grace_period: '1500ms' });
    const a = await rt.api.createMachine(app, { config });
    const b = await rt.api.createMachine(app, { config });
    await healthy(rt.api, app, a.id);
    await healthy(rt.api, app, b.id);
    const gone = await viaRouter(rt.local, 'shop.localhost', '/stop-listening', { method: 'POST' });
    assert.equal(gone.status, 200);
    const serving = gone.body === a.id ? b.id : a.id;
    for (let i = 0; i < 6; i++) {
      const res = await viaRouter(rt.local, 'shop.localhost', '/echo', { method: 'POST', body: `hello ${i}` });
      assert.equal(res.status, 200);
      assert.equal(res.body, `hello ${i}`);
    }
    assert.equal((await who()).machine, serving);
  });
});
