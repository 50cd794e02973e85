// The release against a Machines API that misbehaves the way Fly can: 429 with and without
// Retry-After, 503, a 408 on create after the machine was made, dropped connections before and
// after the work was done. The release still completes, with no duplicate machines, and every
// request the client sent matches Fly's spec.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalRuntime, type LocalRuntime } from '../local/main.ts';
import { importImage } from '../local/images.ts';
import { FlyClient } from '../backend/providers/fly/client.ts';
import { flyAppNameForSlug } from '../backend/providers/fly/names.ts';
import { META } from '../backend/providers/fly/types.ts';
import { release } from '../backend/releases/blue-green.ts';
import { startChaosProxy, type ChaosProxy } from './support/chaos-proxy.ts';
import { findPathTemplate, validateRequest } from './support/fly-spec.ts';
import { get } from './support/load.ts';
import { FAST, releaseInput } from './support/release-fixtures.ts';

const HELLO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../examples/hello-node');
const MACHINES = /^\/v1\/apps\/[^/]+\/machines$/;
const MACHINE = /^\/v1\/apps\/[^/]+\/machines\/[^/]+$/;

describe('release through a misbehaving Machines API', function () {
  this.timeout(90_000);
  let dataDir: string;
  let local: LocalRuntime;
  let chaos: ChaosProxy;
  let retries: string[];
  let client: FlyClient;

  beforeEach(async () => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-chaos-'));
    local = await startLocalRuntime({ dataDir, machinesPort: 0, routerPort: 0 });
    chaos = await startChaosProxy(local.machinesUrl);
    retries = [];
    client = new FlyClient({
      baseUrl: chaos.url,
      token: `FlyV1 ${local.token}`,
      backoff: { baseMs: 50, capMs: 400 },
      onRetry: (r) => retries.push(`${r.method} ${r.path}: ${r.reason}`),
    });
    for (const tag of ['v1', 'v2']) await importImage(dataDir, 'web', tag, HELLO, { cmd: ['node', 'server.js'] });
  });
  afterEach(async () => {
    await chaos.close();
    await local.close();
  });

  it('completes v1 then v2 with every kind of fault injected, and leaves exactly the wanted machines', async () => {
    const two = { region: 'local', machineSize: 'shared-cpu-1x', internalPort: 8080, healthCheckPath: '/health', instanceCount: 2 };
    chaos.rules.push(
      { method: 'GET', path: /^\/v1\/apps\/[^/]+$/, fault: { kind: 'status', status: 503 }, times: 1 },
      { method: 'POST', path: /^\/v1\/apps$/, fault: { kind: 'drop-after' }, times: 1 },
      { method: 'POST', path: MACHINES, fault: { kind: 'status', status: 429, retryAfter: '1' }, times: 1 },
      { method: 'POST', path: MACHINES, fault: { kind: 'status-after', status: 408 }, times: 1 },
      { method: 'POST', path: MACHINES, fault: { kind: 'drop-after' }, times: 1 },
      { method: 'GET', path: MACHINES, fault: { kind: 'status', status: 429 }, times: 1 },
      { method: 'GET', path: /\/wait$/, fault: { kind: 'drop-before' }, times: 1 },
      { method: 'GET', path: MACHINE, fault: { kind: 'status', status: 503 }, times: 2 },
      { method: 'POST', path: /\/uncordon$/, fault: { kind: 'drop-after' }, times: 1 },
    );
    const first = await release(releaseInput('web', 'dep-1', 'v1', { settings: two }), { client, org: 'personal', timing: FAST });
    assert.equal(first.machines.length, 2);

    chaos.rules.push(
      { method: 'POST', path: MACHINES, fault: { kind: 'status-after', status: 408 }, times: 2 },
      { method: 'POST', path: /\/cordon$/, fault: { kind: 'status', status: 429, retryAfter: '0' }, times: 1 },
      { method: 'POST', path: /\/stop$/, fault: { kind: 'drop-after' }, times: 1 },
      { method: 'DELETE', path: MACHINE, fault: { kind: 'status', status: 503 }, times: 2 },
    );
    const second = await release(releaseInput('web', 'dep-2', 'v2', { settings: two }), { client, org: 'personal', timing: FAST });

    assert.ok(
      chaos.rules.every((r) => r.times === 0),
      `every fault fired: ${JSON.stringify(chaos.rules.filter((r) => r.times > 0).map((r) => `${r.method} ${r.path}`))}`,
    );
    assert.ok(retries.length >= 10, `the client retried (${retries.length}):\n${retries.join('\n')}`);
    const direct = new FlyClient({ baseUrl: local.machinesUrl, token: local.token });
    const live = (await direct.listMachines(flyAppNameForSlug('web'), { metadata: { [META.app]: 'app-web' } })).filter(
      (m) => !['destroying', 'destroyed'].includes(m.state),
    );
    assert.deepEqual(live.map((m) => m.id).sort(), [...second.machines].sort(), 'exactly the two v2 machines: no twins, no leftovers');
    assert.ok(live.every((m) => m.config.metadata?.[META.deployment] === 'dep-2' && m.state === 'started' && !m.cordoned));
    const creates = chaos.requests.filter((r) => r.method === 'POST' && MACHINES.test(r.path));
    assert.ok(creates.length > 4, 'creates were retried');
    assert.equal(JSON.parse((await get(local.routerUrl, 'web.localhost', '/release')).body).release, 'v2');

    // Every request the client sent is one Fly's spec describes, with a body it accepts.
    for (const r of chaos.requests) {
      const template = findPathTemplate(r.method, r.path);
      assert.ok(template, `${r.method} ${r.path} is not in Fly's spec`);
      // The spec's description says a null value unsets a secret; its schema says only strings.
      const body =
        r.method === 'POST' && template === '/v1/apps/{app_name}/secrets' ? JSON.parse(JSON.stringify(r.body, (_k, v) => (v === null ? '' : v))) : r.body;
      validateRequest(r.method, template, body);
      assert.equal(r.headers.authorization, `FlyV1 ${local.token}`);
    }
  });
});
