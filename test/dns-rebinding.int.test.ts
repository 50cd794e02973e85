// DNS rebinding: a page on evil.example whose name is rebound to 127.0.0.1 is same-origin with
// whatever listens there. The local api answers only to its own host names and refuses writes
// from foreign pages; the local Machines API (which runs commands: init.exec) wants the token
// that only Rhone's own processes can read.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { User } from '../backend/models/index.ts';
import { db } from '../backend/db.ts';
import { startLocalRuntime, type LocalRuntime } from '../local/main.ts';
import { MACHINES_TOKEN_FILE } from '../local/token.ts';
import { dbFingerprint } from './db-state.ts';
import { signedIn, startTestServer, type TestServer } from './http.ts';
import { tempDataDir } from './local-helpers.ts';

interface Raw {
  status: number;
  body: any;
}

/** A request with headers fetch will not let us set (Host). */
function raw(url: string, method: string, headers: Record<string, string>, body?: unknown): Promise<Raw> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false, headers: { ...headers, ...(payload ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

describe('DNS rebinding: the local api', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ config: { publicUrl: 'http://rhone.test:3000' } });
  });
  after(async () => {
    await server.close();
  });

  it('answers only to its own host names', async () => {
    const port = new URL(server.url).port;
    for (const host of [`evil.example:${port}`, 'evil.example', `shop.localhost:${port}`, '10.0.0.1']) {
      const res = await raw(`${server.url}/api/me`, 'GET', { host });
      assert.equal(res.status, 403, host);
      assert.equal(res.body.error, 'host_not_allowed');
      assert.match(res.body.message, /RHONE_PUBLIC_URL/);
    }
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'LOCALHOST', 'rhone.test:3000']) {
      const res = await raw(`${server.url}/api/me`, 'GET', { host });
      assert.equal(res.status, 401, host);
    }
    // What `npm start` probes.
    assert.equal((await raw(`${server.url}/healthz`, 'GET', { host: `127.0.0.1:${port}` })).status, 200);
  });

  it('signs nobody in through /auth/dev for a foreign Host', async () => {
    const before = await dbFingerprint();
    const res = await raw(`${server.url}/auth/dev`, 'POST', { host: 'evil.example' }, { login: 'mallory' });
    assert.equal(res.status, 403);
    assert.equal(res.body.error, 'host_not_allowed');
    assert.deepEqual(await dbFingerprint(), before);
  });

  it('refuses a write from a foreign page even with a valid session and CSRF token', async () => {
    const ada = await signedIn(server.url, 'ada');
    const before = await dbFingerprint();
    const res = await ada.request('POST', '/api/teams', { slug: 'acme', name: 'Acme' }, { origin: 'http://evil.example' });
    assert.equal(res.status, 403);
    assert.equal(res.body.error, 'origin_not_allowed');
    assert.match(res.body.message, /RHONE_PUBLIC_URL/);
    assert.deepEqual(await dbFingerprint(), before);
    // A foreign page cannot sign anyone in either.
    assert.equal((await ada.request('POST', '/auth/dev', { login: 'mallory' }, { origin: 'null' })).status, 403);
    assert.equal(await User.query(db()).findOne({ login: 'mallory' }), undefined);
    // Its own pages (same host, or the public URL) and clients that send no Origin still write.
    assert.equal((await ada.request('POST', '/api/teams', { slug: 'acme', name: 'Acme' }, { origin: server.url })).status, 201);
    assert.equal((await ada.request('POST', '/api/teams', { slug: 'acme2', name: 'Acme 2' }, { origin: 'http://rhone.test:3000' })).status, 201);
    assert.equal((await ada.post('/api/teams', { slug: 'acme3', name: 'Acme 3' })).status, 201);
  });
});

describe('DNS rebinding: the local Machines API', () => {
  let local: LocalRuntime;
  let dataDir: string;
  beforeEach(async () => {
    dataDir = tempDataDir();
    local = await startLocalRuntime({ dataDir, machinesPort: 0, routerPort: 0 });
  });
  afterEach(async () => {
    await local.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps a random token in a file only its owner can read', () => {
    const file = path.join(dataDir, MACHINES_TOKEN_FILE);
    assert.ok(existsSync(file));
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.match(local.token, /^[A-Za-z0-9_-]{43}$/);
  });

  it('refuses to start with a token file other users can read', async () => {
    const loose = tempDataDir();
    try {
      writeFileSync(path.join(loose, MACHINES_TOKEN_FILE), 'x'.repeat(43), { mode: 0o644 });
      chmodSync(path.join(loose, MACHINES_TOKEN_FILE), 0o644); // whatever the umask
      await assert.rejects(startLocalRuntime({ dataDir: loose, machinesPort: 0, routerPort: 0 }), /can be read by other users \(mode 644\): delete it/);
    } finally {
      await rm(loose, { recursive: true, force: true });
    }
  });

  it('answers 401 without the token, or with another, and runs nothing', async () => {
    const url = `${local.machinesUrl}/v1/apps`;
    const create = { name: 'rhone-evil', org_slug: 'personal' };
    for (const authorization of [undefined, 'Bearer anything', `Bearer ${local.token}x`, `Bearer ${local.token.slice(1)}`, local.token]) {
      const res = await raw(url, 'POST', authorization ? { authorization } : {}, create);
      assert.equal(res.status, 401, authorization);
      assert.equal(typeof res.body.error, 'string');
    }
    assert.equal(local.runtime.store.state.apps['rhone-evil'], undefined);

    // With the token an app exists; a machine with init.exec is still refused without it.
    assert.equal((await raw(url, 'POST', { authorization: `Bearer ${local.token}` }, create)).status, 201);
    const marker = path.join(dataDir, 'pwned');
    const machine = { config: { image: 'rhone-local/none:v1', init: { exec: ['/bin/sh', '-c', `touch ${marker}`] } } };
    const res = await raw(`${url}/rhone-evil/machines`, 'POST', { authorization: 'Bearer local-runtime' }, machine);
    assert.equal(res.status, 401);
    assert.deepEqual(Object.keys(local.runtime.store.state.machines), []);
    assert.equal(existsSync(marker), false);
  });

  it('answers only to loopback host names', async () => {
    const port = new URL(local.machinesUrl).port;
    const auth = { authorization: `Bearer ${local.token}` };
    const refused = await raw(`${local.machinesUrl}/v1/apps?org_slug=personal`, 'GET', { ...auth, host: `evil.example:${port}` });
    assert.equal(refused.status, 403);
    assert.match(refused.body.error, /host/i);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) {
      assert.equal((await raw(`${local.machinesUrl}/v1/apps?org_slug=personal`, 'GET', { ...auth, host })).status, 200, host);
    }
  });

  it('keeps the same token across restarts, and the api finds it', async () => {
    const first = local.token;
    await local.close();
    local = await startLocalRuntime({ dataDir, machinesPort: 0, routerPort: 0 });
    assert.equal(local.token, first);
    const { machinesApi } = await import('../backend/providers/fly/index.ts');
    const { getConfig } = await import('../backend/config.ts');
    const { client } = machinesApi({ ...getConfig(), dataDir, machinesPort: Number(new URL(local.machinesUrl).port) });
    await client.createApp({ name: 'rhone-ok', org_slug: 'personal' });
    assert.ok(local.runtime.store.state.apps['rhone-ok']);
  });
});
