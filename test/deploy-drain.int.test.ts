// Drain figures: a release on the local runtime counts the WebSocket connections its old machines
// closed and how many of their clients came back to the new release, stores them on the
// deployment, says so in the deployment log, and the API shows them. The router counts; the
// clients behave like a Vango page (reconnect after a backoff when the app closes them).
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { getConfig } from '../backend/config.ts';
import { importImage } from '../local/images.ts';
import { startLocalRuntime, type LocalRuntime } from '../local/main.ts';
import { healthy, until, useRuntime } from './local-helpers.ts';
import { signedIn, type Client } from './http.ts';
import { TestRepo } from './support/git-repo.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { VangoClients } from './support/vango-clients.ts';

const HELLO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../examples/hello-node');
const CLIENTS = 6;

describe('drain figures on a deployment (local mode)', function () {
  this.timeout(120_000);
  let local: LocalRuntime;
  let pipeline: Pipeline;
  let ada: Client;
  let clients: VangoClients | undefined;

  beforeEach(async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-drain-'));
    local = await startLocalRuntime({ dataDir, machinesPort: 0, routerPort: 0 });
    const config = { ...getConfig(), dataDir, machinesPort: Number(new URL(local.machinesUrl).port), routerPort: Number(new URL(local.routerUrl).port) };
    pipeline = await startPipeline(config);
    ada = await signedIn(pipeline.server.url, 'ada');
    const repo = new TestRepo(HELLO);
    repo.commit('first version');
    const created = await ada.post('/api/teams/ada/apps', { name: 'Web', slug: 'web', source: { type: 'git', url: repo.url, branch: 'main' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  });

  afterEach(async () => {
    clients?.stop();
    await pipeline.close();
    await local.close();
  });

  const deployed = async (): Promise<{ id: string; drain: unknown }> => {
    const res = await ada.post('/api/apps/web/deploy', {});
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return until(
      `deployment ${res.body.id} to go live`,
      async () => {
        const d = (await ada.get(`/api/deployments/${res.body.id}`)).body;
        if (['failed', 'canceled'].includes(d.status)) throw new Error(`deployment ${d.status}: ${d.reason}`);
        return d.status === 'live' ? d : undefined;
      },
      60_000,
    );
  };

  it('stores how many connections the old release drained and how many clients came back, and logs it', async () => {
    const first = await deployed();
    assert.equal(first.drain, null, 'nothing was drained by the first release');

    clients = new VangoClients(local.routerUrl, 'web.localhost', CLIENTS, { backoffMs: 100 });
    clients.start();
    await clients.allOn('#1');
    const second = (await deployed()) as { id: string; drain: Record<string, unknown> };
    await clients.allOn('#2');

    const drain = second.drain;
    assert.equal(drain.source, 'router');
    assert.equal(drain.connections, CLIENTS);
    assert.equal(drain.cut, 0, 'hello-node sends a close frame to every client');
    assert.equal(drain.reconnected, CLIENTS);
    for (const key of ['reconnectP50Ms', 'reconnectP95Ms', 'reconnectMaxMs'] as const) {
      assert.equal(typeof drain[key], 'number', `${key}: ${JSON.stringify(drain)}`);
      assert.ok((drain[key] as number) >= 100 && (drain[key] as number) < 10_000, `${key} = ${drain[key]}: clients come back after their 100 ms backoff`);
    }
    // The clients' own view agrees: every one was told, then came back to #2.
    const closes = clients.closesSince(0);
    assert.equal(closes.length, CLIENTS);
    assert.ok(
      closes.every((c) => c.told && c.code === 1012),
      JSON.stringify(closes),
    );

    const logs = await ada.get(`/api/deployments/${second.id}/logs?limit=1000`);
    const lines = logs.body.items.map((l: { line: string }) => l.line) as string[];
    assert.ok(
      lines.some((l) => new RegExp(`^${CLIENTS} connections drained, all reconnected in \\d+(\\.\\d)? s$`).test(l)),
      lines.join('\n'),
    );

    const list = await ada.get('/api/apps/web/deployments');
    const listed = list.body.items.find((d: { id: string }) => d.id === second.id);
    assert.deepEqual(listed.drain, drain, 'the list shows the same figures');
  });

  it('says when no WebSocket connection was open on the old release', async () => {
    await deployed();
    const second = (await deployed()) as { id: string; drain: Record<string, unknown> };
    assert.equal(second.drain.connections, 0);
    assert.equal(second.drain.reconnected, 0);
    assert.equal(second.drain.reconnectP95Ms, null);
    const logs = await ada.get(`/api/deployments/${second.id}/logs?limit=1000`);
    const lines = logs.body.items.map((l: { line: string }) => l.line) as string[];
    assert.ok(lines.includes('No WebSocket connections were open on the old release'), lines.join('\n'));
  });
});

describe('local runtime: GET /v1/apps/{app}/local/connections', function () {
  this.timeout(30_000);
  let vango: VangoClients | undefined;
  afterEach(() => vango?.stop()); // before the runtime closes (hooks run in the order they were added)
  const rt = useRuntime();

  async function helloMachine(app: string, tag: string) {
    await importImage(rt.dataDir, 'hello', tag, HELLO, { cmd: [process.execPath, 'server.js'] });
    const m = await rt.api.createMachine(app, {
      config: {
        image: `rhone-local/hello:${tag}`,
        env: { RHONE_RELEASE: tag },
        stop_config: { signal: 'SIGTERM', timeout: '5s' },
        services: [
          {
            protocol: 'tcp',
            internal_port: 8080,
            autostop: 'off',
            ports: [{ port: 80, handlers: ['http'] }],
            checks: [{ type: 'http', method: 'GET', path: '/health', interval: '200ms', timeout: '1s', grace_period: '100ms' }],
          },
        ],
      },
    });
    await healthy(rt.api, app, m.id);
    return m.id as string;
  }

  const report = (app: string, query: string) => rt.api.localExtension(`/v1/apps/${app}/local/connections?${query}`);

  it('counts closes the app made and the clients that came back to another machine, not closes the client made', async () => {
    const app = await rt.api.createApp('rhone-hello');
    const old = await helloMachine(app, 'a');
    const since = Date.now();
    vango = new VangoClients(rt.local.routerUrl, 'hello.localhost', 3, { backoffMs: 50 });
    vango.start();
    await vango.allOn('a');
    // One more client that leaves by itself: closed by the client, not drained.
    const leaver = new WebSocket(new URL('/_vango/ws', rt.local.routerUrl.replace('http', 'ws')).href, { headers: { host: 'hello.localhost' } });
    await new Promise((resolve) => leaver.once('open', resolve));
    leaver.close(1000);
    await new Promise((resolve) => leaver.once('close', resolve));
    await until('the leaver to be counted', async () => (await report(app, `machine=${old}&since=${since}`)).closed_by_client === 1);
    assert.equal((await report(app, `machine=${old}`)).open, 3);

    const fresh = await helloMachine(app, 'b');
    await rt.api.call('POST', '/v1/apps/{app_name}/machines/{machine_id}/cordon', { params: { app_name: app, machine_id: old } });
    await rt.api.call('POST', '/v1/apps/{app_name}/machines/{machine_id}/stop', {
      params: { app_name: app, machine_id: old },
      body: { signal: 'SIGTERM', timeout: '5s' },
    });
    await vango.allOn('b');
    const figures = await until('the drain to settle', async () => {
      const r = await report(app, `machine=${old}&since=${since}`);
      return r.settled ? r : undefined;
    });
    assert.equal(figures.open, 0);
    assert.equal(figures.drained, 3);
    assert.equal(figures.cut, 0);
    assert.equal(figures.closed_by_client, 1);
    assert.equal(figures.reconnected, 3);
    assert.equal(figures.reconnect_ms.length, 3);
    assert.equal(figures.window_ms, 10_000);
    // The new machine's own figures: three open, none drained.
    const other = await report(app, `machine=${fresh}`);
    assert.equal(other.open, 3);
    assert.equal(other.drained, 0);
  });

  it('refuses a request without a machine, with a bad since, or for a machine of another app', async () => {
    const app = await rt.api.createApp('rhone-hello');
    const id = await helloMachine(app, 'a');
    await assert.rejects(report(app, ''), /400 .*machine/);
    await assert.rejects(report(app, `machine=${id}&since=yesterday`), /400 .*since/);
    await assert.rejects(report(app, 'machine=0123456789abcd'), /404 /);
    await assert.rejects(rt.api.localExtension(`/v1/apps/rhone-nope/local/connections?machine=${id}`), /404 /);
  });
});
