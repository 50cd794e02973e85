// Every call of the Fly client, made against the local runtime through a recording proxy: each
// request the client sends and each answer it gets must be what Fly's spec describes.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalRuntime, type LocalRuntime } from '../local/main.ts';
import { importImage } from '../local/images.ts';
import { FlyClient } from '../backend/providers/fly/client.ts';
import { machineConfig } from '../backend/releases/machine-config.ts';
import { startChaosProxy, type ChaosProxy } from './support/chaos-proxy.ts';
import { findPathTemplate, validateRequest, validateResponse } from './support/fly-spec.ts';

const HELLO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../examples/hello-node');

describe('Fly client against the spec', function () {
  this.timeout(60_000);
  let dataDir: string;
  let local: LocalRuntime;
  let proxy: ChaosProxy;

  before(async () => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-client-spec-'));
    local = await startLocalRuntime({ dataDir, machinesPort: 0, routerPort: 0 });
    proxy = await startChaosProxy(local.machinesUrl);
    await importImage(dataDir, 'shop', 'v1', HELLO, { cmd: ['node', 'server.js'] });
  });
  after(async () => {
    await proxy.close();
    await local.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('sends and receives only what the spec describes, for every call it makes', async () => {
    const fly = new FlyClient({ baseUrl: proxy.url, token: local.token });
    const app = 'rhone-shop';
    assert.equal(await fly.getApp(app), null);
    const created = await fly.createApp({ name: app, org_slug: 'personal', idempotency_key: 'k1' });
    assert.ok(created.id);
    assert.equal((await fly.getApp(app))?.name, app);
    // A deploy token for the app, as the build stage mints one per build; only for an app that exists.
    assert.match(await fly.createDeployToken(app, '35m0s'), /^FlyV1 \S+$/);
    await assert.rejects(fly.createDeployToken('rhone-nobody', '35m0s'), /answered 404/);
    await assert.rejects(fly.createDeployToken(app, '600'), /answered 400/);

    const { version } = await fly.setSecrets(app, { API_KEY: 'secret-value' });
    assert.deepEqual(
      (await fly.listSecrets(app)).map((s) => s.name),
      ['API_KEY'],
    );
    const config = machineConfig({
      image: 'rhone-local/shop:v1',
      appId: 'a1',
      deploymentId: 'd1',
      launchId: 'd1:0',
      settings: { region: 'local', machineSize: 'shared-cpu-1x', internalPort: 8080, healthCheckPath: '/health', instanceCount: 1 },
      checkTiming: { interval: '200ms', timeout: '1s', gracePeriod: '0s' },
    });
    const m = await fly.createMachine(app, { config, region: 'local', skip_service_registration: true, min_secrets_version: version });
    assert.equal((await fly.waitForState(app, m.id, 'started', { version: m.version, timeoutMs: 10_000 })).state, 'started');
    assert.equal((await fly.getMachine(app, m.id))?.cordoned, true);
    assert.equal((await fly.listMachines(app, { metadata: { rhone_app: 'a1' }, pageSize: 1 })).length, 1);
    assert.ok((await fly.listEvents(app, m.id)).some((e) => e.status === 'started'));

    const lease = await fly.acquireLease(app, m.id, 30, 'rhone test');
    await fly.uncordon(app, m.id, lease.nonce);
    await fly.patchMetadata(app, m.id, { rhone_role: 'test' }, lease.nonce);
    const updated = await fly.updateMachine(app, m.id, { config: { ...config, env: { ...config.env, EXTRA: '1' } }, current_version: m.version }, lease.nonce);
    assert.notEqual(updated.version, m.version);
    await fly.releaseLease(app, m.id, lease.nonce);
    await fly.cordon(app, m.id);
    await fly.stopMachine(app, m.id, { signal: 'SIGTERM', timeout: '5s' });
    await fly.waitForState(app, m.id, 'stopped', { version: updated.version, timeoutMs: 10_000 });
    await fly.startMachine(app, m.id);
    await fly.waitForState(app, m.id, 'started', { timeoutMs: 10_000 });

    const cert = await fly.requestCertificate(app, 'www.shop.localhost');
    assert.equal(cert.hostname, 'www.shop.localhost');
    assert.equal((await fly.getCertificate(app, 'www.shop.localhost'))?.status, 'active');
    await fly.checkCertificate(app, 'www.shop.localhost');
    await fly.deleteCertificate(app, 'www.shop.localhost');
    assert.equal(await fly.getCertificate(app, 'www.shop.localhost'), null);

    const ip = await fly.assignIp(app, 'v6');
    assert.ok((await fly.listIps(app)).some((i) => i.ip === ip.ip));
    await fly.releaseIp(app, ip.ip);
    assert.ok((await fly.listOrgMachines('personal')).some((o) => o.id === m.id));

    await fly.destroyMachine(app, m.id, { force: true });
    await fly.destroyMachine(app, m.id, { force: true }); // already gone: not an error
    await fly.deleteApp(app);

    const operations = new Set<string>();
    for (const r of proxy.requests) {
      const template = findPathTemplate(r.method, r.path);
      assert.ok(template, `${r.method} ${r.path} is not an operation of Fly's spec`);
      operations.add(`${r.method} ${template}`);
      assert.equal(r.headers.authorization, `Bearer ${local.token}`);
      validateRequest(r.method, template, r.body);
      assert.ok(r.response, `${r.method} ${r.path} got an answer`);
      validateResponse(r.method, template, r.response.status, r.response.body);
    }
    assert.ok(operations.size >= 25, `covered ${operations.size} operations:\n${[...operations].join('\n')}`);
  });
});
