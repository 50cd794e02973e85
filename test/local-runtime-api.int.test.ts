// The local Machines API's bookkeeping: apps, listing and paging, leases, metadata, secrets,
// IPs and the org-wide list. Every answer is checked against Fly's spec (test/local-helpers.ts).
import assert from 'node:assert/strict';
import { FlyApi, IMAGE, appConfig, healthy, useRuntime, viaRouter } from './local-helpers.ts';

const MACHINES = '/v1/apps/{app_name}/machines';
const M = '/v1/apps/{app_name}/machines/{machine_id}';

describe('local runtime: the Machines API', function () {
  this.timeout(30_000);
  const rt = useRuntime();

  it('needs an Authorization header', async () => {
    const anonymous = new FlyApi(rt.local.machinesUrl, '');
    const res = await anonymous.call('GET', '/v1/apps/{app_name}', { params: { app_name: 'rhone-x' } });
    assert.equal(res.status, 401);
    assert.match(res.body.error, /Authorization/);
  });

  it('creates apps idempotently, refuses a taken name, and deletes an app with its machines', async () => {
    const body = { name: 'rhone-shop', org_slug: 'personal', idempotency_key: 'k-1' };
    const first = await rt.api.call('POST', '/v1/apps', { body });
    const again = await rt.api.call('POST', '/v1/apps', { body });
    assert.equal(first.status, 201);
    assert.deepEqual(again.body, first.body);
    const taken = await rt.api.call('POST', '/v1/apps', { body: { name: 'rhone-shop', org_slug: 'personal' } });
    assert.deepEqual([taken.status, taken.body.status], [422, 'name_taken']);

    const m = await rt.api.createMachine('rhone-shop', { config: appConfig() });
    await rt.api.wait('rhone-shop', m.id, 'started');
    const app = await rt.api.call('GET', '/v1/apps/{app_name}', { params: { app_name: 'rhone-shop' } });
    assert.deepEqual([app.body.name, app.body.machine_count, app.body.organization.slug], ['rhone-shop', 1, 'personal']);

    const gone = await rt.api.call('DELETE', '/v1/apps/{app_name}', { params: { app_name: 'rhone-shop' } });
    assert.equal(gone.status, 202);
    assert.equal((await rt.api.call('GET', '/v1/apps/{app_name}', { params: { app_name: 'rhone-shop' } })).status, 404);
    assert.equal((await viaRouter(rt.local, 'shop.localhost')).status, 404);
  });

  it('refuses an image that is not in the local store, and a duration given as a number', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const missing = await rt.api.call('POST', MACHINES, { params: { app_name: app }, body: { config: { image: 'rhone-local/nope:v9' } } });
    assert.equal(missing.status, 422);
    assert.match(missing.body.error, /"rhone-local\/nope:v9" was not found in the local image store/);
    const config = { ...appConfig(), stop_config: { signal: 'SIGTERM', timeout: 30 } };
    const bad = await rt.api.call('POST', MACHINES, { params: { app_name: app }, body: { config }, skipRequestValidation: true });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /stop_config\.timeout/);
  });

  it('lists machines by metadata and state, page by page through fly-next-cursor', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const made: Record<string, string[]> = { blue: [], green: [] };
    for (const role of ['blue', 'green', 'green', 'blue', 'green']) {
      const m = await rt.api.createMachine(app, { config: { image: IMAGE, metadata: { rhone_role: role } }, skip_launch: true });
      made[role].push(m.id);
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const res = await rt.api.call('GET', MACHINES, { params: { app_name: app }, query: { 'metadata.rhone_role': 'green', limit: 2, cursor } });
      assert.equal(res.status, 200);
      assert.ok(res.body.length <= 2);
      seen.push(...res.body.map((m: { id: string }) => m.id));
      cursor = res.headers['fly-next-cursor'] as string | undefined;
      pages++;
    } while (cursor);
    assert.equal(pages, 2);
    assert.deepEqual(seen.sort(), made.green.sort());

    const created = await rt.api.call('GET', MACHINES, { params: { app_name: app }, query: { state: 'created,started' } });
    assert.equal(created.body.length, 5);
    const none = await rt.api.call('GET', MACHINES, { params: { app_name: app }, query: { state: 'started' } });
    assert.deepEqual(none.body, []);
    const summary = await rt.api.call('GET', MACHINES, { params: { app_name: app }, query: { summary: true } });
    assert.equal(summary.body[0].config, undefined);
  });

  it('requires the lease nonce for changes while a machine is leased', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const m = await rt.api.createMachine(app, { config: appConfig() });
    await rt.api.wait(app, m.id, 'started');
    const params = { app_name: app, machine_id: m.id };
    const lease = await rt.api.call('POST', `${M}/lease`, { params, body: { ttl: 30, description: 'deploy dep_1' } });
    assert.equal(lease.status, 201);
    const nonce = lease.body.nonce;
    assert.equal((await rt.api.call('GET', `${M}/lease`, { params })).body.description, 'deploy dep_1');

    const stolen = await rt.api.call('POST', `${M}/lease`, { params, body: { ttl: 30 } });
    assert.equal(stolen.status, 409);
    const blocked = await rt.api.call('POST', `${M}/cordon`, { params });
    assert.equal(blocked.status, 409);
    assert.match(blocked.body.error, /leased/);
    const blockedMeta = await rt.api.call('POST', `${M}/metadata/{key}`, { params: { ...params, key: 'k' }, body: { value: 'v' } });
    assert.equal(blockedMeta.status, 409);

    const withNonce = { 'fly-machine-lease-nonce': nonce };
    assert.equal((await rt.api.call('POST', `${M}/cordon`, { params, headers: withNonce })).status, 200);
    assert.equal((await rt.api.machine(app, m.id)).cordoned, true);
    const refreshed = await rt.api.call('POST', `${M}/lease`, { params, body: { ttl: 60 }, headers: withNonce });
    assert.equal(refreshed.body.nonce, nonce);
    assert.equal((await rt.api.call('DELETE', `${M}/lease`, { params, headers: withNonce })).status, 200);
    assert.equal((await rt.api.call('POST', `${M}/uncordon`, { params })).status, 200);

    const leased = await rt.api.createMachine(app, { config: appConfig(), skip_launch: true, lease_ttl: 30 });
    assert.match(leased.nonce, /^[0-9a-f]{32}$/);
    const leasedParams = { app_name: app, machine_id: leased.id };
    assert.equal((await rt.api.call('POST', `${M}/start`, { params: leasedParams })).status, 409);
    const start = await rt.api.call('POST', `${M}/start`, { params: leasedParams, headers: { 'fly-machine-lease-nonce': leased.nonce } });
    assert.equal(start.status, 200);
  });

  it('sets, removes and reads metadata, with a 412 on a stale machine_version', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const m = await rt.api.createMachine(app, { config: { image: IMAGE, metadata: { a: '1', b: '2' } }, skip_launch: true });
    const params = { app_name: app, machine_id: m.id };
    const patched = await rt.api.call('PATCH', `${M}/metadata`, { params, body: { metadata: { b: '', c: '3' }, machine_version: m.version } });
    assert.equal(patched.status, 204);
    assert.deepEqual((await rt.api.call('GET', `${M}/metadata`, { params })).body, { a: '1', c: '3' });
    const stale = await rt.api.call('PATCH', `${M}/metadata`, { params, body: { metadata: { d: '4' }, machine_version: '01ARZ3NDEKTSV4RRFFQ69G5FAV' } });
    assert.equal(stale.status, 412);
    assert.equal((await rt.api.call('DELETE', `${M}/metadata/{key}`, { params: { ...params, key: 'a' } })).status, 204);
    assert.equal((await rt.api.call('GET', `${M}/metadata/{key}`, { params: { ...params, key: 'c' } })).body.value, '3');
    assert.equal((await rt.api.call('GET', `${M}/metadata/{key}`, { params: { ...params, key: 'a' } })).status, 404);
  });

  it('puts secrets in a machine env at boot and never returns their values', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const set = await rt.api.call('POST', '/v1/apps/{app_name}/secrets', {
      params: { app_name: app },
      body: { values: { API_KEY: 's3cret-value', OTHER: 'x' } },
    });
    assert.equal(set.status, 200);
    assert.equal(set.body.version, 1);
    assert.ok(!JSON.stringify(set.body).includes('s3cret-value'));
    // Fly's spec types values as strings, but a null is how Fly unsets one.
    const unset = await rt.api.call('POST', '/v1/apps/{app_name}/secrets', {
      params: { app_name: app },
      body: { values: { OTHER: null } },
      skipRequestValidation: true,
    });
    assert.equal(unset.body.version, 2);

    const listed = await rt.api.call('GET', '/v1/apps/{app_name}/secrets', { params: { app_name: app } });
    assert.deepEqual(
      listed.body.secrets.map((s: { name: string }) => s.name),
      ['API_KEY'],
    );
    assert.match(listed.body.secrets[0].digest, /^[0-9a-f]{16}$/);
    assert.ok(!JSON.stringify(listed.body).includes('s3cret-value'));

    const tooNew = await rt.api.call('POST', MACHINES, { params: { app_name: app }, body: { config: appConfig(), min_secrets_version: 3 } });
    assert.equal(tooNew.status, 400);
    const m = await rt.api.createMachine(app, { config: appConfig(), min_secrets_version: 2 });
    await healthy(rt.api, app, m.id);
    assert.equal((await viaRouter(rt.local, 'shop.localhost', '/env/API_KEY')).body, 's3cret-value');
    assert.equal((await viaRouter(rt.local, 'shop.localhost', '/env/OTHER')).status, 404);
  });

  it('assigns local IPs and lists, checks and deletes certificates', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const params = { app_name: app };
    const v4 = await rt.api.call('POST', '/v1/apps/{app_name}/ip_assignments', { params, body: { type: 'shared_v4' } });
    const v6 = await rt.api.call('POST', '/v1/apps/{app_name}/ip_assignments', { params, body: { type: 'v6' } });
    assert.deepEqual([v4.body.ip, v4.body.shared, v6.body.ip], ['127.0.0.1', true, '::1']);
    assert.deepEqual(
      (await rt.api.call('GET', '/v1/apps/{app_name}/ip_assignments', { params })).body.ips.map((i: { ip: string }) => i.ip),
      ['127.0.0.1', '::1'],
    );
    assert.equal((await rt.api.call('DELETE', '/v1/apps/{app_name}/ip_assignments/{ip}', { params: { ...params, ip: '::1' } })).status, 204);

    await rt.api.call('POST', '/v1/apps/{app_name}/certificates/acme', { params, body: { hostname: 'api.shop.localhost' } });
    const cert = await rt.api.call('GET', '/v1/apps/{app_name}/certificates/{hostname}', { params: { ...params, hostname: 'api.shop.localhost' } });
    assert.deepEqual([cert.body.status, cert.body.configured], ['active', true]);
    const list = await rt.api.call('GET', '/v1/apps/{app_name}/certificates', { params });
    assert.deepEqual(
      list.body.certificates.map((c: { hostname: string }) => c.hostname),
      ['api.shop.localhost'],
    );
    await rt.api.createApp('rhone-other');
    const clash = await rt.api.call('POST', '/v1/apps/{app_name}/certificates/acme', {
      params: { app_name: 'rhone-other' },
      body: { hostname: 'api.shop.localhost' },
    });
    assert.equal(clash.status, 422);
    assert.equal(
      (await rt.api.call('DELETE', '/v1/apps/{app_name}/certificates/{hostname}', { params: { ...params, hostname: 'api.shop.localhost' } })).status,
      204,
    );
    assert.equal(
      (await rt.api.call('GET', '/v1/apps/{app_name}/certificates/{hostname}', { params: { ...params, hostname: 'api.shop.localhost' } })).status,
      404,
    );
  });

  it("lists an org's machines oldest update first, page by page through next_cursor", async () => {
    const app = await rt.api.createApp('rhone-shop');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push((await rt.api.createMachine(app, { config: { image: IMAGE, guest: { cpu_kind: 'shared', cpus: 1, memory_mb: 256 } }, skip_launch: true })).id);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const res = await rt.api.call('GET', '/v1/orgs/{org_slug}/machines', { params: { org_slug: 'personal' }, query: { limit: 2, cursor } });
      seen.push(...res.body.machines.map((m: { id: string }) => m.id));
      assert.equal(res.body.machines[0].config.guest.memory_mb, 256);
      cursor = res.body.next_cursor;
    } while (cursor);
    assert.deepEqual(seen, ids);
    const later = await rt.api.call('GET', '/v1/orgs/{org_slug}/machines', {
      params: { org_slug: 'personal' },
      query: { updated_after: new Date(Date.now() + 1000).toISOString() },
    });
    assert.deepEqual(later.body.machines, []);
    const other = await rt.api.call('GET', '/v1/orgs/{org_slug}/machines', { params: { org_slug: 'someone-else' } });
    assert.deepEqual(other.body.machines, []);
  });
});
