import assert from 'node:assert/strict';
import { db } from '../backend/db.ts';
import { getConfig } from '../backend/config.ts';
import { sha256 } from '../backend/lib/crypto.ts';
import { SESSION_TTL_MS, SessionSealer } from '../backend/lib/session.ts';
import { Team, User } from '../backend/models/index.ts';
import { Client, signedIn, startTestServer, type TestServer } from './http.ts';
import { dbFingerprint } from './db-state.ts';

/** The Set-Cookie line for one cookie, lower-cased attributes split out. */
function cookieLine(res: { headers: Headers }, name: string): { value: string; attrs: Set<string>; raw: string } {
  const raw = res.headers.getSetCookie().find((l) => l.startsWith(`${name}=`));
  assert.ok(raw, `no Set-Cookie for ${name}`);
  const [pair, ...attrs] = raw.split(';').map((p) => p.trim());
  return { value: pair.slice(name.length + 1), attrs: new Set(attrs.map((a) => a.toLowerCase())), raw };
}

describe('API tokens', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
  });

  it('shows a new token once and stores only its sha256 hash', async () => {
    const ada = await signedIn(server.url, 'ada');
    const created = await ada.post('/api/tokens', { name: 'CI deploys' });
    assert.equal(created.status, 201);
    const { token, id, prefix } = created.body;
    assert.match(token, /^rhone_[A-Za-z0-9_-]{40,}$/);
    assert.equal(prefix, token.slice(0, 12));

    const row = await db()('api_tokens').where({ id }).first();
    assert.equal(row.tokenHash, sha256(token));
    const { rows } = await db().raw('select t::text as row from api_tokens t');
    assert.equal(rows.length, 1);
    assert.ok(!rows[0].row.includes(token.slice(12)), 'the secret part of the token is stored');

    const list = await ada.get('/api/tokens');
    assert.deepEqual(
      list.body.items.map((t: { id: string; name: string; prefix: string }) => [t.id, t.name, t.prefix]),
      [[id, 'CI deploys', prefix]],
    );
    assert.ok(!JSON.stringify(list.body).includes(token.slice(12)));
    assert.equal(list.body.items[0].token, undefined);
  });

  it('authenticates Bearer requests on /api without CSRF, until revoked', async () => {
    const ada = await signedIn(server.url, 'ada');
    const { token, id } = (await ada.post('/api/tokens', { name: 'cli', scope: 'admin' })).body;
    const api = new Client(server.url).withToken(token);
    assert.equal((await api.get('/api/me')).body.user.login, 'ada');
    const created = await api.post('/api/teams', { slug: 'acme', name: 'Acme' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    // Tokens are listed through the dashboard's session only (no token may list them).
    assert.ok((await ada.get('/api/tokens')).body.items[0].lastUsedAt);

    // The same write from the cookie session needs the CSRF header.
    const noCsrf = await ada.request('POST', '/api/teams', { slug: 'acme-2', name: 'x' }, { 'x-csrf-token': '' });
    assert.equal(noCsrf.status, 403);
    assert.equal(noCsrf.body.error, 'csrf_failed');
    assert.equal(await Team.query(db()).where({ slug: 'acme-2' }).resultSize(), 0);

    for (const bad of [`${token}x`, token.slice(0, -1), 'rhone_nope', 'not-a-token']) {
      const res = await new Client(server.url).withToken(bad).get('/api/me');
      assert.equal(res.status, 401, bad);
      assert.equal(res.body.error, 'unauthenticated');
    }

    // Another user cannot revoke it.
    const bob = await signedIn(server.url, 'bob');
    assert.equal((await bob.delete(`/api/tokens/${id}`)).status, 404);
    assert.equal((await api.get('/api/me')).status, 200);

    assert.equal((await ada.delete(`/api/tokens/${id}`)).status, 204);
    const revoked = await api.get('/api/me');
    assert.equal(revoked.status, 401);
    assert.match(revoked.body.message, /revoked/);
    assert.equal((await api.post('/api/teams', { slug: 'acme-3', name: 'x' })).status, 401);
    assert.deepEqual((await ada.get('/api/tokens')).body.items, []);
    assert.equal((await ada.delete(`/api/tokens/${id}`)).status, 404);
  });

  it('a token, whatever its scope, cannot create, list or revoke tokens: 403 saying to use the dashboard', async () => {
    const ada = await signedIn(server.url, 'ada');
    const { token, id } = (await ada.post('/api/tokens', { name: 'cli', scope: 'admin' })).body;
    const api = new Client(server.url).withToken(token);
    for (const res of [await api.post('/api/tokens', { name: 'child' }), await api.get('/api/tokens'), await api.delete(`/api/tokens/${id}`)]) {
      assert.equal(res.status, 403);
      assert.equal(res.body.error, 'forbidden');
      assert.match(res.body.message, /^API tokens cannot create, list or revoke API tokens; sign in to the dashboard/);
    }
    assert.deepEqual(
      (await ada.get('/api/tokens')).body.items.map((t: { name: string }) => t.name),
      ['cli'],
    );
    assert.equal((await api.get('/api/me')).status, 200, 'not revoked');
  });

  it('refuses an expired token', async () => {
    const ada = await signedIn(server.url, 'ada');
    const { token, id, expiresAt } = (await ada.post('/api/tokens', { name: 'short', expiresInDays: 1 })).body;
    assert.ok(Math.abs(new Date(expiresAt).getTime() - Date.now() - 86_400_000) < 60_000);
    const api = new Client(server.url).withToken(token);
    assert.equal((await api.get('/api/me')).status, 200);
    await db()('api_tokens')
      .where({ id })
      .update({ expiresAt: new Date(Date.now() - 1000) });
    assert.equal((await api.get('/api/me')).status, 401);
  });
});

describe('sessions', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
  });

  it('sets an HttpOnly, SameSite=Lax session cookie that expires, and a CSRF cookie scripts can read', async () => {
    const res = await new Client(server.url).post('/auth/dev', { login: 'ada' });
    const session = cookieLine(res, 'rhone_session');
    for (const attr of ['httponly', 'samesite=lax', 'path=/']) assert.ok(session.attrs.has(attr), `${attr} missing: ${session.raw}`);
    assert.ok(!session.attrs.has('secure'), 'plain http in local mode cannot use Secure');
    const expires = [...session.attrs].find((a) => a.startsWith('expires='))!;
    assert.ok(Math.abs(Date.parse(expires.slice(8)) - Date.now() - SESSION_TTL_MS) < 60_000);
    const csrf = cookieLine(res, 'rhone_csrf');
    assert.ok(!csrf.attrs.has('httponly'));
    assert.ok(csrf.attrs.has('samesite=lax'));
    // The cookie is sealed: neither the user id nor the CSRF token can be read from it.
    const user = await User.query(db()).findOne({ login: 'ada' }).throwIfNotFound();
    assert.ok(!Buffer.from(session.value, 'base64url').toString('latin1').includes(user.id));
    assert.ok(!session.value.includes(csrf.value));
  });

  it('marks cookies Secure when the public URL is https', async () => {
    const secure = await startTestServer({ config: { secureCookies: true, publicUrl: 'https://rhone.example' } });
    try {
      // Behind a TLS-terminating proxy, as on Fly: the request reaches us as http with X-Forwarded-Proto.
      const res = await new Client(secure.url).request('POST', '/auth/dev', { login: 'ada' }, { 'x-forwarded-proto': 'https' });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      for (const name of ['__Host-rhone_session', '__Host-rhone_csrf']) assert.ok(cookieLine(res, name).attrs.has('secure'), name);
    } finally {
      await secure.close();
    }
  });

  it('names the cookies __Host- over https, so an app on a sibling subdomain cannot set them', async () => {
    const secure = await startTestServer({ config: { secureCookies: true, publicUrl: 'https://rhone.example' } });
    try {
      const https = { 'x-forwarded-proto': 'https' };
      const client = new Client(secure.url);
      const res = await client.request('POST', '/auth/dev', { login: 'ada' }, https);
      assert.equal(res.status, 201, JSON.stringify(res.body));
      for (const name of ['__Host-rhone_session', '__Host-rhone_csrf']) {
        const line = cookieLine(res, name);
        for (const attr of ['secure', 'path=/']) assert.ok(line.attrs.has(attr), `${attr} missing: ${line.raw}`);
        assert.ok(![...line.attrs].some((a) => a.startsWith('domain=')), line.raw);
      }
      assert.equal(res.headers.getSetCookie().filter((l) => l.startsWith('rhone_')).length, 0, 'unprefixed cookies were set too');
      // The client echoes __Host-rhone_csrf (test/http.ts, as the dashboard does).
      assert.equal((await client.request('GET', '/api/me', undefined, https)).status, 200);
      assert.equal((await client.request('POST', '/api/teams', { slug: 'acme', name: 'Acme' }, https)).status, 201);
      // A cookie tossed under the old name (what a sibling subdomain can set) does not sign anyone in.
      const tossed = new Client(secure.url);
      tossed.cookies = new Map([['rhone_session', client.cookies.get('__Host-rhone_session')!]]);
      assert.equal((await tossed.request('GET', '/api/me', undefined, https)).status, 401);
      const out = await client.request('POST', '/auth/logout', {}, https);
      assert.equal(out.status, 204);
      assert.equal(cookieLine(out, '__Host-rhone_session').value, '');
    } finally {
      await secure.close();
    }
  });

  it('treats a tampered, foreign or expired session cookie as signed out', async () => {
    const ada = await signedIn(server.url, 'ada');
    const good = ada.cookies.get('rhone_session')!;
    const user = await User.query(db()).findOne({ login: 'ada' }).throwIfNotFound();
    const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    const [session] = await db()('sessions').where({ userId: user.id }).select('id');
    const forged = new SessionSealer('another-secret-that-is-long-enough-0123456789').seal({
      sessionId: session.id,
      csrf: 'c',
      expiresAt: Date.now() + 60_000,
    });
    const expired = new SessionSealer(getConfig().sessionSecret).seal({ sessionId: session.id, csrf: 'c', expiresAt: Date.now() - 1000 });
    for (const value of [flip(good, 5), flip(good, good.length - 3), good.slice(0, -4), forged, expired, 'garbage']) {
      const client = new Client(server.url);
      client.cookies = new Map([
        ['rhone_session', value],
        ['rhone_csrf', 'c'],
      ]);
      const res = await client.get('/api/me');
      assert.equal(res.status, 401, value);
      assert.equal(res.body.error, 'unauthenticated');
      const before = await dbFingerprint();
      assert.equal((await client.post('/api/teams', { slug: 'acme', name: 'Acme' })).status, 401);
      assert.deepEqual(await dbFingerprint(), before);
    }
    assert.equal((await ada.get('/api/me')).status, 200);
  });

  it('ends the session on logout', async () => {
    const ada = await signedIn(server.url, 'ada');
    const copied = new Map(ada.cookies);
    const res = await ada.post('/auth/logout');
    assert.equal(res.status, 204);
    for (const name of ['rhone_session', 'rhone_csrf']) {
      const line = cookieLine(res, name);
      assert.equal(line.value, '');
      assert.ok(
        [...line.attrs].some((a) => a === 'expires=thu, 01 jan 1970 00:00:00 gmt'),
        line.raw,
      );
    }
    assert.equal(ada.cookies.size, 0);
    assert.equal((await ada.get('/api/me')).status, 401);
    assert.equal((await ada.post('/auth/logout')).status, 401);
    // A copy of the cookie taken before signing out no longer works either: the session is over on the server.
    const thief = new Client(server.url);
    thief.cookies = copied;
    assert.equal((await thief.get('/api/me')).status, 401);
  });

  it('has no dev sign-in in production mode', async () => {
    const prod = await startTestServer({ config: { isLocal: false, mode: 'production' } });
    try {
      const before = await dbFingerprint();
      const res = await new Client(prod.url).post('/auth/dev', { login: 'ada' });
      assert.equal(res.status, 404);
      assert.equal(res.body.error, 'not_found');
      assert.equal(res.headers.getSetCookie().length, 0);
      assert.deepEqual(await dbFingerprint(), before);
    } finally {
      await prod.close();
    }
  });
});

describe('rate limits and health', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ rateLimits: { signInPerMinute: 2, writesPerMinute: 3 } });
  });
  after(async () => {
    await server.close();
  });

  function assertLimited(res: { status: number; body: { error: string }; headers: Headers }) {
    assert.equal(res.status, 429);
    assert.equal(res.body.error, 'rate_limited');
    const retryAfter = Number(res.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${res.headers.get('retry-after')}`);
  }

  it('limits sign-ins per IP: the third in a minute gets 429 and signs no one in', async () => {
    await signedIn(server.url, 'ada');
    await signedIn(server.url, 'bob');
    const before = await dbFingerprint();
    const carol = new Client(server.url);
    const res = await carol.post('/auth/dev', { login: 'carol' });
    assertLimited(res);
    assert.equal(carol.cookies.size, 0);
    assert.deepEqual(await dbFingerprint(), before);
  });

  it('limits writes per caller: the fourth in a minute gets 429 and writes nothing; reads go on', async () => {
    const ada = await signedIn(server.url, 'ada');
    for (const slug of ['t-one', 't-two', 't-three']) assert.equal((await ada.post('/api/teams', { slug, name: slug })).status, 201);
    const before = await dbFingerprint();
    assertLimited(await ada.post('/api/teams', { slug: 't-four', name: 'x' }));
    assertLimited(await ada.delete('/api/teams/t-one'));
    assert.deepEqual(await dbFingerprint(), before);
    assert.equal((await ada.get('/api/me')).body.teams.length, 4);
    // Another caller has their own allowance.
    const bob = await signedIn(server.url, 'bob');
    assert.equal((await bob.post('/api/teams', { slug: 'b-one', name: 'x' })).status, 201);
  });

  it('counts sign-ins by the address the proxy saw, not one the client made up', async () => {
    const github = { ...getConfig().github, clientId: 'Iv1.test', clientSecret: 'secret' };
    const prod = await startTestServer({ config: { isLocal: false, mode: 'production', github }, rateLimits: { signInPerMinute: 2, writesPerMinute: 3 } });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) {
        // A client can send any X-Forwarded-For; the proxy appends the address it really saw.
        const res = await new Client(prod.url).request('GET', '/auth/github', undefined, { 'x-forwarded-for': `10.0.0.${i}, 203.0.113.7` });
        statuses.push(res.status);
      }
      assert.deepEqual(statuses, [302, 302, 429]);
    } finally {
      await prod.close();
    }
  });

  it('answers /healthz and /readyz', async () => {
    const health = await new Client(server.url).get('/healthz');
    assert.equal(health.status, 200);
    assert.deepEqual(health.body, { ok: true });
    const ready = await new Client(server.url).get('/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body, { ok: true, postgres: 'ok', redis: 'ok' });
  });
});
