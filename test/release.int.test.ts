// Blue/green releases end to end on the local runtime with examples/hello-node: the same release
// code that drives Fly, through the same client.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalRuntime, type LocalRuntime } from '../local/main.ts';
import { importImage } from '../local/images.ts';
import { FlyClient } from '../backend/providers/fly/client.ts';
import { flyAppNameForSlug, flyNetworkForApp } from '../backend/providers/fly/names.ts';
import { META } from '../backend/providers/fly/types.ts';
import { release, ReleaseError, type ReleaseInput } from '../backend/releases/blue-green.ts';
import { get, startLoad } from './support/load.ts';
import { FAST, releaseInput } from './support/release-fixtures.ts';
import { until } from './support/until.ts';

const HELLO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../examples/hello-node');
async function release_(local: LocalRuntime, client: FlyClient, input: ReleaseInput, lines: string[] = []) {
  return release(input, { client, org: 'personal', timing: FAST, log: (l) => lines.push(l) });
}

describe('blue/green release on the local runtime', function () {
  this.timeout(90_000);
  let dataDir: string;
  let local: LocalRuntime;
  let client: FlyClient;
  const host = 'web.localhost';

  beforeEach(async () => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-release-'));
    local = await startLocalRuntime({ dataDir, machinesPort: 0, routerPort: 0 });
    client = new FlyClient({ baseUrl: local.machinesUrl, token: local.token, backoff: { baseMs: 50, capMs: 500 } });
    for (const tag of ['v1', 'v2']) await importImage(dataDir, 'web', tag, HELLO, { cmd: ['node', 'server.js'] });
  });
  afterEach(async () => {
    await local.close();
  });

  it('swaps v1 for v2 under steady load with zero failed requests, then serves only v2', async () => {
    const first = await release_(local, client, releaseInput('web', 'dep-1', 'v1'));
    assert.equal(first.machines.length, 1);
    const v1 = await get(local.routerUrl, host, '/release');
    assert.equal(JSON.parse(v1.body).release, 'v1');

    const load = startLoad(local.routerUrl, host, '/release', 4);
    await new Promise((r) => setTimeout(r, 300));
    const lines: string[] = [];
    const second = await release_(local, client, releaseInput('web', 'dep-2', 'v2'), lines);
    await new Promise((r) => setTimeout(r, 300));
    const result = await load.stop();

    assert.equal(result.failed, 0, `failed requests during the swap:\n${result.failures.slice(0, 10).join('\n')}`);
    assert.ok(result.ok > 50, `the load kept going (${result.ok} requests)`);
    const releases = result.bodies.map((b) => JSON.parse(b).release as string);
    assert.ok(releases.includes('v1') && releases.includes('v2'), 'both releases answered during the swap');
    // Once v2 answered, v1 never answered again... and afterwards only v2 does.
    const lastV1 = releases.lastIndexOf('v1');
    assert.ok(releases.slice(lastV1 + 1).every((r) => r === 'v2'));
    for (let i = 0; i < 20; i++) assert.equal(JSON.parse((await get(local.routerUrl, host, '/release')).body).release, 'v2');

    assert.deepEqual(second.replaced, first.machines);
    const machines = await client.listMachines(flyAppNameForSlug('web'), { metadata: { [META.app]: 'app-web' } });
    assert.deepEqual(
      machines.filter((m) => m.state !== 'destroyed').map((m) => m.id),
      second.machines,
    );
    assert.ok(
      lines.some((l) => /Stopping 1 old machine \(SIGTERM/.test(l)),
      lines.join('\n'),
    );
    // Env vars went in as secrets, never into the machine config.
    const green = await client.getMachine(flyAppNameForSlug('web'), second.machines[0]);
    assert.ok(!JSON.stringify(green?.config).includes('hello from'), 'secret values are not in the machine config');
  });

  it("the first release gives the app public addresses and its own network; machines carry Fly's standard metadata", async () => {
    const app = flyAppNameForSlug('web');
    await release_(local, client, releaseInput('web', 'dep-1', 'v1', { releaseVersion: 1 }));
    // As flyctl's first deploy: an IPv6 and a shared IPv4, so <app>.fly.dev resolves.
    const ips = await client.listIps(app);
    assert.deepEqual(ips.map((i) => [i.ip.includes(':') ? 'v6' : 'v4', i.shared ?? false]).sort(), [
      ['v4', true],
      ['v6', false],
    ]);
    const second = await release_(local, client, releaseInput('web', 'dep-2', 'v2', { releaseVersion: 2 }));
    assert.equal((await client.listIps(app)).length, 2, 'a second release allocates nothing more');
    // Each Rhone app is alone in its private network: two apps, two networks.
    await importImage(dataDir, 'api', 'v1', HELLO, { cmd: ['node', 'server.js'] });
    await release_(local, client, releaseInput('api', 'dep-3', 'v1', { image: 'rhone-local/api:v1' }));
    assert.equal((await client.getApp(app))?.network, flyNetworkForApp('app-web'));
    assert.equal((await client.getApp(flyAppNameForSlug('api')))?.network, flyNetworkForApp('app-api'));
    assert.notEqual(flyNetworkForApp('app-web'), flyNetworkForApp('app-api'));
    // fly_* metadata as flyctl sets it (machine_types.go, machines_deploymachinesapp.go), so flyctl
    // and Fly's dashboard treat the machines as a managed release of the app's "app" group.
    const green = await client.getMachine(app, second.machines[0]);
    assert.deepEqual(Object.fromEntries(Object.entries(green?.config.metadata ?? {}).filter(([k]) => k.startsWith('fly_'))), {
      fly_platform_version: 'v2',
      fly_process_group: 'app',
      fly_release_id: 'dep-2',
      fly_release_version: '2',
    });
  });

  it('a release whose checks never pass leaves v1 serving and says why', async () => {
    await release_(local, client, releaseInput('web', 'dep-1', 'v1'));
    const bad = releaseInput('web', 'dep-2', 'v2', {
      settings: { region: 'local', machineSize: 'shared-cpu-1x', internalPort: 8080, healthCheckPath: '/not-here', instanceCount: 1 },
    });
    const lines: string[] = [];
    await assert.rejects(
      release(bad, { client, org: 'personal', timing: { ...FAST, healthDeadlineMs: 2000 }, log: (l) => lines.push(l) }),
      (err: ReleaseError) => {
        assert.ok(err instanceof ReleaseError, String(err));
        assert.equal(err.phase, 'health');
        assert.match(err.message, /GET \/not-here on port 8080/);
        assert.match(err.message, /answers \/not-here with a 2xx/);
        return true;
      },
    );
    assert.ok(lines.some((l) => /previous release keeps serving/.test(l)));
    const machines = (await client.listMachines(flyAppNameForSlug('web'), { metadata: { [META.app]: 'app-web' } })).filter(
      (m) => !['destroying', 'destroyed'].includes(m.state),
    );
    assert.equal(machines.length, 1, `the new machine was removed: ${machines.map((m) => `${m.id} ${m.state}`).join(', ')}`);
    assert.equal(machines[0].config.metadata?.[META.deployment], 'dep-1');
    assert.equal(JSON.parse((await get(local.routerUrl, host, '/release')).body).release, 'v1');
  });

  it('a release of an app that crashes at start says so, with its exit code', async () => {
    await importImage(dataDir, 'web', 'crash', HELLO, { cmd: ['node', '-e', 'console.error("boom"); process.exit(3)'] });
    await assert.rejects(
      release(releaseInput('web', 'dep-1', 'crash'), { client, org: 'personal', timing: { ...FAST, healthDeadlineMs: 1500 } }),
      (err: ReleaseError) => {
        assert.ok(err instanceof ReleaseError, String(err));
        assert.match(err.message, /its process exited \d+ times? \(last with exit code 3\)/);
        return true;
      },
    );
    const live = (await client.listMachines(flyAppNameForSlug('web'))).filter((m) => !['destroying', 'destroyed'].includes(m.state));
    assert.equal(live.length, 0, 'the crashing machine was removed');
  });

  it('running the same release twice (a retry after a crash) leaves no twin machines', async () => {
    const a = await release_(
      local,
      client,
      releaseInput('web', 'dep-1', 'v1', {
        settings: { region: 'local', machineSize: 'shared-cpu-1x', internalPort: 8080, healthCheckPath: '/health', instanceCount: 2 },
      }),
    );
    const b = await release_(
      local,
      client,
      releaseInput('web', 'dep-1', 'v1', {
        settings: { region: 'local', machineSize: 'shared-cpu-1x', internalPort: 8080, healthCheckPath: '/health', instanceCount: 2 },
      }),
    );
    assert.deepEqual(b.machines.sort(), a.machines.sort());
    assert.deepEqual(b.replaced, []);
    const live = (await client.listMachines(flyAppNameForSlug('web'))).filter((m) => m.state !== 'destroyed');
    assert.equal(live.length, 2);
  });

  it('restarts an app process that was SIGKILLed, and the router recovers', async () => {
    await release_(local, client, releaseInput('web', 'dep-1', 'v1'));
    const before = JSON.parse((await get(local.routerUrl, host, '/release')).body) as { pid: number };
    process.kill(before.pid, 'SIGKILL');
    const after = await until(
      'a new process answering',
      async () => {
        // While the process restarts the router may refuse the connection: not yet.
        const res = await get(local.routerUrl, host, '/release').catch(() => undefined);
        if (res?.status !== 200) return undefined;
        const body = JSON.parse(res.body) as { pid: number; release: string };
        return body.pid !== before.pid ? body : undefined;
      },
      { timeoutMs: 15_000, everyMs: 100 },
    );
    assert.equal(after.release, 'v1');
  });
});
