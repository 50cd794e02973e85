import assert from 'node:assert/strict';
import { db } from '../backend/db.ts';
import { createToken } from '../backend/commands/tokens.ts';
import { Team, TeamMember, type User } from '../backend/models/index.ts';
import { addMember, makeApp, makeUser } from './factories.ts';
import { Client, signedIn, startTestServer, type Res, type TestServer } from './http.ts';
import { dbFingerprint } from './db-state.ts';
import { useLookup } from '../backend/source/remote-guard.ts';

// Outbound DNS is off in tests: the production checks resolve through this table instead.
const DNS: Record<string, string[]> = {
  'example.com': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'],
  'internal.example.com': ['127.0.0.1'],
  'mixed.example.com': ['93.184.215.14', '10.1.2.3'],
};
const fakeLookup = async (host: string) => {
  const found = DNS[host];
  if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  return found;
};

const gitSource = { type: 'git', url: 'file:///tmp/repo.git', branch: 'main' };
const newApp = (slug: string, extra: Record<string, unknown> = {}) => ({ name: 'Web', slug, source: gitSource, ...extra });

/** Runs a request that must be refused: a 4xx {error, message, details?}, and the database untouched. */
async function refused(call: () => Promise<Res>, status: number, error: string, mention?: RegExp): Promise<Res> {
  const before = await dbFingerprint();
  const res = await call();
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(res.headers.get('content-type')?.split(';')[0], 'application/json');
  assert.equal(res.body.error, error, JSON.stringify(res.body));
  assert.equal(typeof res.body.message, 'string');
  assert.ok(res.body.message.length > 10, `message too terse: ${res.body.message}`);
  if (mention) assert.match(res.body.message, mention);
  assert.deepEqual(await dbFingerprint(), before, 'a refused request changed the database');
  return res;
}

describe('bad input', () => {
  let server: TestServer;
  let ada: Client;
  let adaUser: User;
  let team: Team;

  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
  });
  beforeEach(async () => {
    ada = await signedIn(server.url, 'ada');
    team = await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound();
    adaUser = await makeUser('ada');
    await makeApp(adaUser, team, 'web');
  });

  it('refuses malformed JSON with 400 invalid_json', async () => {
    await refused(() => ada.request('POST', '/api/teams/ada/apps', '{"name": "Web", "slug": "web-two",'), 400, 'invalid_json', /not valid JSON/);
    await refused(() => ada.request('PUT', '/api/apps/web/env', "{vars: {A: '1'}}"), 400, 'invalid_json');
  });

  it('refuses bodies over 1 MB with 413, whether the length is announced or streamed', async () => {
    const big = JSON.stringify(newApp('web-two', { buildCommand: 'x'.repeat(1024 * 1024) }));
    await refused(() => ada.request('POST', '/api/teams/ada/apps', big), 413, 'payload_too_large', /1 MB/);
    const chunked = async (): Promise<Res> => {
      const res = await fetch(`${server.url}/api/teams/ada/apps`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          cookie: [...ada.cookies].map(([k, v]) => `${k}=${v}`).join('; '),
          'x-csrf-token': ada.cookies.get('rhone_csrf')!,
        },
        body: new Blob([big]).stream(),
        duplex: 'half',
      } as RequestInit);
      return { status: res.status, body: await res.json(), headers: res.headers };
    };
    await refused(chunked, 413, 'payload_too_large');
    // Just under the limit is read (and then judged on its content, not its size).
    const under = JSON.stringify(newApp('web-two', { buildCommand: 'x'.repeat(1000 * 1000) }));
    const res = await ada.request('POST', '/api/teams/ada/apps', under);
    assert.equal(res.status, 400, JSON.stringify(res.body).slice(0, 200));
    assert.equal(res.body.error, 'validation_error');
  });

  it('refuses bodies that are not JSON with 415', async () => {
    await refused(
      () => ada.request('POST', '/api/teams', 'slug=acme&name=Acme', { 'content-type': 'application/x-www-form-urlencoded' }),
      415,
      'unsupported_media_type',
      /application\/json/,
    );
    await refused(() => ada.request('POST', '/api/teams', '{"slug":"acme","name":"Acme"}', { 'content-type': 'text/plain' }), 415, 'unsupported_media_type');
  });

  it('refuses invalid app slugs, naming the rule broken', async () => {
    const cases: [string, RegExp][] = [
      ['ab', /at least 3/],
      ['a'.repeat(31), /at most 30/],
      ['MyApp', /lowercase/],
      ['-web', /hyphen/],
      ['web-', /hyphen/],
      ['we--b', /hyphen/],
      ['web_app', /lowercase/],
      ['www', /reserved/],
      ['api', /reserved/],
      ['admin', /reserved/],
    ];
    for (const [slug, rule] of cases) {
      const res = await refused(() => ada.post('/api/teams/ada/apps', newApp(slug)), 400, 'validation_error', rule);
      assert.deepEqual(
        res.body.details.map((d: { field: string }) => d.field),
        ['body.slug'],
        slug,
      );
    }
    // The edges of the rule are accepted.
    for (const slug of ['abc', 'a'.repeat(30), 'my-app-2']) {
      assert.equal((await ada.post('/api/teams/ada/apps', newApp(slug))).status, 201, slug);
    }
  });

  it('refuses invalid team slugs', async () => {
    for (const slug of ['a', 'a'.repeat(40), 'Acme', '-acme', 'acme-', 'ac--me', 'ac me', 'www', 'api', 'teams']) {
      const res = await refused(() => ada.post('/api/teams', { slug, name: 'Acme' }), 400, 'validation_error', /slug/);
      assert.equal(res.body.details[0].field, 'body.slug', slug);
    }
    assert.equal((await ada.post('/api/teams', { slug: 'ac', name: 'Acme' })).status, 201);
  });

  it('refuses invalid env var names and oversized values, writing none of the batch', async () => {
    for (const name of ['lower', '1ABC', 'WITH-DASH', 'HAS SPACE', 'ÜBER']) {
      const res = await refused(() => ada.put('/api/apps/web/env', { vars: { GOOD: '1', [name]: 'x' } }), 400, 'validation_error', /\[A-Z_\]\[A-Z0-9_\]\*/);
      assert.equal(res.body.details[0].field, `body.vars.${name}`);
    }
    await refused(() => ada.put('/api/apps/web/env', { vars: { GOOD: '1', BIG: 'x'.repeat(64 * 1024 + 1) } }), 400, 'validation_error', /64 KB/);
    // Bytes count, not characters: 32769 two-byte characters are over 64 KB.
    await refused(() => ada.put('/api/apps/web/env', { vars: { BIG: 'é'.repeat(32 * 1024 + 1) } }), 400, 'validation_error', /64 KB/);
    await refused(() => ada.put('/api/apps/web/env', { vars: {} }), 400, 'validation_error', /at least one/);
    const ok = await ada.put('/api/apps/web/env', { vars: { _UNDER: '1', BIG: 'x'.repeat(64 * 1024) } });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(
      ok.body.items.map((v: { name: string }) => v.name),
      ['BIG', '_UNDER'],
    );
  });

  it('refuses roles that do not exist, for invitations and members', async () => {
    const bob = await makeUser('bob');
    await addMember(team, bob, 'member');
    for (const role of ['superuser', 'Owner', '', 'billing']) {
      await refused(() => ada.post('/api/teams/ada/invitations', { login: 'carol', role }), 400, 'validation_error', /owner, admin, member/);
      await refused(() => ada.patch('/api/teams/ada/members/bob', { role }), 400, 'validation_error', /owner, admin, member/);
    }
    await refused(() => ada.post('/api/teams/ada/invitations', { login: 'not a login!', role: 'member' }), 400, 'validation_error', /GitHub login/);
    const member = await TeamMember.query(db()).findOne({ teamId: team.id, userId: bob.id });
    assert.equal(member?.role, 'member');
  });

  it('refuses unknown fields, naming them', async () => {
    await refused(() => ada.post('/api/teams/ada/apps', newApp('web-two', { colour: 'red' })), 400, 'validation_error', /colour/);
    // Fields a caller must never set themselves are unknown too.
    await refused(() => ada.post('/api/teams', { slug: 'acme', name: 'Acme', plan: 'enterprise' }), 400, 'validation_error', /plan/);
    await refused(() => ada.patch('/api/apps/web', { name: 'x', teamId: team.id }), 400, 'validation_error', /teamId/);
    await refused(() => ada.patch('/api/apps/web', { source: { ...gitSource, token: 'x' } }), 400, 'validation_error', /token/);
    await refused(() => ada.put('/api/apps/web/env', { vars: { A: '1' }, replace: true }), 400, 'validation_error', /replace/);
    await refused(() => ada.post('/api/tokens', { name: 'ci', userId: adaUser.id }), 400, 'validation_error', /userId/);
    await refused(
      () => ada.post('/api/teams/ada/invitations', { login: 'carol', role: 'member', expiresAt: '2099-01-01' }),
      400,
      'validation_error',
      /expiresAt/,
    );
  });

  it('refuses git URLs with a user name or password on create and update, in every mode', async () => {
    for (const url of ['https://user:tok3n@github.com/a/b.git', 'https://tok3n@github.com/a/b.git', 'https://x-access-token:ghs_abc@github.com/a/b.git']) {
      const source = { type: 'git', url, branch: 'main' };
      const created = await refused(
        () => ada.post('/api/teams/ada/apps', newApp('web-two', { source })),
        400,
        'validation_error',
        /remove the credentials from the URL; private GitHub repositories are reached through the GitHub App/,
      );
      const updated = await refused(() => ada.patch('/api/apps/web', { source }), 400, 'validation_error', /remove the credentials/);
      for (const res of [created, updated]) {
        assert.doesNotMatch(JSON.stringify(res.body), /tok3n|ghs_abc/);
        assert.equal(res.body.details[0].field, 'body.source.url');
      }
    }
  });

  it('never shows the credentials of a URL stored before they were refused', async () => {
    await db()('apps')
      .where({ slug: 'web' })
      .update({ source: JSON.stringify({ type: 'git', url: 'https://user:tok3n@example.com/a/b.git', branch: 'main' }) });
    const res = await ada.get('/api/apps/web');
    assert.equal(res.status, 200);
    assert.equal(res.body.source.url, 'https://example.com/a/b.git');
    assert.doesNotMatch(JSON.stringify(res.body), /tok3n/);
  });

  /** Runs `body` against an api in production mode, as ada with an admin token, with DNS answered by fakeLookup. */
  async function inProduction(body: (api: Client) => Promise<void>): Promise<void> {
    const restore = useLookup(fakeLookup);
    const prod = await startTestServer({ config: { isLocal: false, mode: 'production' } });
    try {
      const { token } = await createToken(db(), { user: adaUser, via: 'session' }, { name: 'ci', scope: 'admin' });
      const api = new Client(prod.url).withToken(token);
      // The first use stamps the token's last_used_at; later ones within a minute write nothing.
      assert.equal((await api.get('/api/me')).status, 200);
      await body(api);
    } finally {
      await prod.close();
      restore();
    }
  }

  it('refuses, in production, git URLs whose host is or resolves to a non-public address', () =>
    inProduction(async (api) => {
      const hosts = [
        '127.0.0.1',
        '127.0.0.1:6379',
        '169.254.169.254',
        '[::1]',
        '10.0.0.1',
        '100.64.0.1',
        '[fd00::1]',
        '0.0.0.0',
        '[::ffff:127.0.0.1]',
        'localhost',
        'git.localhost',
        'internal.example.com',
        'mixed.example.com',
        '2130706433',
      ];
      for (const host of hosts) {
        const source = { type: 'git', url: `https://${host}/a/b.git`, branch: 'main' };
        await refused(() => api.post('/api/teams/ada/apps', newApp('web-two', { source })), 400, 'validation_error', /not a public one/);
        await refused(() => api.patch('/api/apps/web', { source }), 400, 'validation_error', /not a public one/);
      }
      const nowhere = { type: 'git', url: 'https://nowhere.invalid/a/b.git', branch: 'main' };
      await refused(() => api.post('/api/teams/ada/apps', newApp('web-two', { source: nowhere })), 400, 'validation_error', /could not be resolved/);
      const ok = await api.patch('/api/apps/web', { source: { type: 'git', url: 'https://example.com/a/b.git', branch: 'main' } });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
    }));

  it('refuses file:// git URLs in production mode, and accepts https', () =>
    inProduction(async (api) => {
      const fileSource = { type: 'git', url: 'file:///srv/repo.git', branch: 'main' };
      await refused(() => api.post('/api/teams/ada/apps', newApp('web-two', { source: fileSource })), 400, 'validation_error', /https:\/\/ URL/);
      await refused(() => api.patch('/api/apps/web', { source: fileSource }), 400, 'validation_error', /https/);
      await refused(
        () => api.post('/api/teams/ada/apps', newApp('web-two', { source: { ...fileSource, url: 'http://example.com/r.git' } })),
        400,
        'validation_error',
        /https/,
      );
      const ok = await api.post('/api/teams/ada/apps', newApp('web-two', { source: { ...fileSource, url: 'https://example.com/r.git' } }));
      assert.equal(ok.status, 201, JSON.stringify(ok.body));
    }));

  it('answers unknown routes with a JSON 404 and wrong methods with a JSON 405', async () => {
    for (const [method, path] of [
      ['GET', '/api/nope'],
      ['POST', '/api/nope'],
      ['GET', '/api/apps/web/nothing'],
      ['POST', '/nope'],
      ['DELETE', '/api/teams/ada/widgets/1'],
    ]) {
      const res = await refused(() => ada.request(method, path, method === 'GET' ? undefined : {}), 404, 'not_found');
      assert.match(res.body.message, new RegExp(`${method} ${path}`));
    }
    for (const [method, path] of [
      ['PUT', '/api/me'],
      ['DELETE', '/healthz'],
      ['PATCH', '/api/teams'],
      ['POST', '/api/apps/web'],
      ['DELETE', '/api/apps/web/env'],
    ]) {
      const res = await refused(() => ada.request(method, path, {}), 405, 'method_not_allowed', new RegExp(`${method} is not allowed`));
      assert.ok(res.headers.get('allow'), `${method} ${path}: a 405 names the allowed methods in Allow`);
    }
    assert.equal((await ada.request('PUT', '/api/me', {})).headers.get('allow'), 'HEAD, GET');
    // Webhook paths are matched as the router matches them, case-insensitively (app.ts lets only them through it).
    for (const path of ['/webhooks/github', '/Webhooks/Stripe/']) {
      const res = await refused(() => ada.request('GET', path), 405, 'method_not_allowed', /GET is not allowed/);
      assert.equal(res.headers.get('allow'), 'POST', path);
    }
  });

  it('refuses a pagination cursor it did not give out, and limits out of range', async () => {
    for (const cursor of ['garbage', 'W10', encodeURIComponent('%%%'), Buffer.from('"x"').toString('base64url')]) {
      await refused(() => ada.get(`/api/teams/ada/apps?cursor=${cursor}`), 400, 'invalid_cursor', /first page/);
      await refused(() => ada.get(`/api/teams/ada/audit?cursor=${cursor}`), 400, 'invalid_cursor');
    }
    for (const limit of ['0', '101', 'ten', '-1']) {
      await refused(() => ada.get(`/api/teams/ada/apps?limit=${limit}`), 400, 'validation_error', /query\.limit/);
    }
  });

  it('refuses a duplicate app slug with 409 slug_taken, across teams too', async () => {
    await refused(() => ada.post('/api/teams/ada/apps', newApp('web')), 409, 'slug_taken', /"web" is taken/);
    const bob = await signedIn(server.url, 'bob');
    const res = await refused(() => bob.post('/api/teams/bob/apps', newApp('web')), 409, 'slug_taken');
    assert.deepEqual(res.body.details, [{ field: 'body.slug', message: 'is taken' }]);
  });
});
