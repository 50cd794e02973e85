// Sign in with GitHub, end to end: the real api in production mode, the real octokit OAuth client, and
// a fake GitHub on a local port playing github.com and api.github.com.
import assert from 'node:assert/strict';
import { db } from '../backend/db.ts';
import { Team, User } from '../backend/models/index.ts';
import { makeUser } from './factories.ts';
import { Client, type Res } from './http.ts';
import { PUBLIC_URL, callbackPath, captureLog, githubSignIn, startSignIn, useGithubWorld } from './support/github-signin.ts';
import { permissionsOf } from '../backend/policies/index.ts';

function cookieLine(res: Res, name: string): string | undefined {
  return res.headers.getSetCookie().find((l) => l.startsWith(`${name}=`));
}

async function sessionCount(): Promise<number> {
  return Number((await db()('sessions').count({ n: '*' }))[0].n);
}

/** The page a failed sign-in shows: HTML with the given status and words, and no session. */
function assertRefused(res: Res, status: number, words: RegExp, client: Client): void {
  assert.equal(res.status, status, String(res.body));
  assert.match(res.headers.get('content-type') ?? '', /text\/html/);
  assert.match(String(res.body), words);
  assert.equal(cookieLine(res, 'rhone_session'), undefined, 'a session cookie was set');
  assert.equal(client.cookies.has('rhone_session'), false);
}

describe('Sign in with GitHub', () => {
  const capture = captureLog('debug');
  const world = useGithubWorld(capture.log);
  beforeEach(() => {
    world.fake.reset();
    world.fake.now = Date.now;
    world.fake.addUser({
      id: 583231,
      login: 'ada',
      name: 'Ada Lovelace',
      avatar_url: 'https://avatars.example/u/583231',
      emails: [
        { email: 'ada@work.example', primary: false, verified: true },
        { email: 'ada@home.example', primary: true, verified: true },
        { email: 'ada@old.example', primary: false, verified: false },
      ],
    });
  });
  afterEach(() => {
    // Nothing secret ever reaches the log: not the client secret, a token GitHub issued, or a code.
    const log = capture.text();
    const secrets = [world.fake.clientSecret, ...world.fake.tokens.keys(), ...world.fake.calls('POST', '/login/oauth/access_token').map((r) => r.body.code)];
    for (const s of secrets.filter(Boolean)) assert.ok(!log.includes(s), `the log contains a secret: ${s.slice(0, 6)}…`);
  });

  it('redirects to GitHub with the client id, a state and the callback URL, and sets the state cookie', async () => {
    const client = new Client(world.server.url);
    const { res, authorizeUrl, state } = await startSignIn(client);
    assert.equal(authorizeUrl.origin + authorizeUrl.pathname, `${world.fake.url}/login/oauth/authorize`);
    assert.equal(authorizeUrl.searchParams.get('client_id'), world.fake.clientId);
    assert.equal(authorizeUrl.searchParams.get('redirect_uri'), `${PUBLIC_URL}/auth/github/callback`);
    assert.match(state, /^[A-Za-z0-9_-]{24,}$/);
    assert.equal(authorizeUrl.searchParams.get('client_secret'), null);

    const line = cookieLine(res, 'rhone_oauth_state');
    assert.ok(line, 'no state cookie');
    const attrs = line.split(';').map((a) => a.trim().toLowerCase());
    assert.ok(attrs.includes('httponly') && attrs.includes('samesite=lax') && attrs.includes('path=/auth/github'), line);
    assert.ok(!line.includes(state), 'the state cookie holds the state in the clear');
    assert.equal(cookieLine(res, 'rhone_session'), undefined);

    // Each visit gets its own state.
    assert.notEqual((await startSignIn(new Client(world.server.url))).state, state);
  });

  it('signs in: a session, the profile, the primary verified email and a personal team', async () => {
    const client = new Client(world.server.url);
    const res = await githubSignIn(client, world.fake, 'ada');
    assert.equal(res.status, 302, String(res.body));
    assert.equal(res.headers.get('location'), '/');
    assert.ok(client.cookies.has('rhone_session') && client.cookies.has('rhone_csrf'));
    assert.ok(!client.cookies.has('rhone_oauth_state'), 'the state cookie was not cleared');

    const me = await client.get('/api/me');
    assert.equal(me.status, 200);
    assert.equal(me.body.user.login, 'ada');
    assert.equal(me.body.user.name, 'Ada Lovelace');
    assert.equal(me.body.user.email, 'ada@home.example');
    assert.equal(me.body.user.avatarUrl, 'https://avatars.example/u/583231');
    assert.deepEqual(me.body.teams, [{ slug: 'ada', name: 'Ada Lovelace', role: 'owner', plan: 'free', personal: true, can: permissionsOf('owner') }]);
    assert.equal((await User.query(db()).findOne({ login: 'ada' }))?.githubId, 583231);

    // What went over the wire to GitHub: the code exchange, then the profile with the user's token.
    const [exchange] = world.fake.calls('POST', '/login/oauth/access_token');
    assert.equal(exchange.headers.accept, 'application/json');
    assert.deepEqual(Object.keys(exchange.body).sort(), ['client_id', 'client_secret', 'code', 'redirect_uri']);
    assert.equal(exchange.body.client_secret, world.fake.clientSecret);
    assert.equal(exchange.body.redirect_uri, `${PUBLIC_URL}/auth/github/callback`);
    const [token] = world.fake.tokens.keys();
    for (const path of ['/user', '/user/emails']) assert.equal(world.fake.calls('GET', path)[0]?.headers.authorization, `token ${token}`);
  });

  it('takes no email that is not both primary and verified', async () => {
    world.fake.addUser({
      login: 'grace',
      emails: [
        { email: 'grace@unverified.example', primary: true, verified: false },
        { email: 'grace@verified.example', primary: false, verified: true },
      ],
    });
    const client = new Client(world.server.url);
    assert.equal((await githubSignIn(client, world.fake, 'grace')).status, 302);
    const me = (await client.get('/api/me')).body;
    assert.equal(me.user.login, 'grace');
    assert.equal(me.user.email, null);
    assert.equal(me.user.name, null);
    assert.deepEqual(
      me.teams.map((t: { slug: string }) => t.slug),
      ['grace'],
    );
  });

  it('signs in without an email when GitHub refuses the emails endpoint', async () => {
    const undo = world.fake.route('GET', '/user/emails', () => ({ status: 403, json: { message: 'Resource not accessible by integration' } }));
    try {
      const client = new Client(world.server.url);
      assert.equal((await githubSignIn(client, world.fake, 'ada')).status, 302);
      assert.equal((await client.get('/api/me')).body.user.email, null);
    } finally {
      undo();
    }
  });

  it('shows a page and starts no session when GitHub fails to give the profile', async () => {
    const undo = world.fake.route('GET', '/user', () => ({ status: 502, json: { message: 'Server Error' } }));
    try {
      const client = new Client(world.server.url);
      assertRefused(await githubSignIn(client, world.fake, 'ada'), 502, /GitHub did not answer/, client);
      assert.equal(await User.query(db()).resultSize(), 0);
      assert.ok(capture.entries().some((e) => e.msg === 'GitHub profile request failed' && e.err?.status === 502));
    } finally {
      undo();
    }
  });

  it('updates the same user when the GitHub login, name or email changed', async () => {
    assert.equal((await githubSignIn(new Client(world.server.url), world.fake, 'ada')).status, 302);
    const before = await User.query(db()).findOne({ githubId: 583231 }).throwIfNotFound();
    const team = await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound();

    Object.assign(world.fake.user(583231), { login: 'ada-l', name: 'Ada King', emails: [{ email: 'ada@new.example', primary: true, verified: true }] });
    const client = new Client(world.server.url);
    assert.equal((await githubSignIn(client, world.fake, 'ada-l')).status, 302);
    const me = (await client.get('/api/me')).body;
    assert.equal(me.user.id, before.id);
    assert.deepEqual([me.user.login, me.user.name, me.user.email], ['ada-l', 'Ada King', 'ada@new.example']);
    assert.deepEqual(
      me.teams.map((t: { slug: string }) => t.slug),
      ['ada'],
      'the personal team keeps its slug',
    );
    assert.equal(await User.query(db()).resultSize(), 1);
    assert.equal(await Team.query(db()).resultSize(), 1);
    assert.deepEqual(await db()('team_members').select('teamId', 'userId', 'role'), [{ teamId: team.id, userId: before.id, role: 'owner' }]);
  });

  it('never signs a new GitHub account into the old holder of a reused login', async () => {
    // Ada renames herself on GitHub without signing in again; someone else then takes the name "ada".
    const adaClient = new Client(world.server.url);
    assert.equal((await githubSignIn(adaClient, world.fake, 'ada')).status, 302);
    const ada = await User.query(db()).findOne({ githubId: 583231 }).throwIfNotFound();
    world.fake.user(583231).login = 'ada-lovelace';
    world.fake.addUser({ id: 999001, login: 'ada', name: 'Someone Else' });

    const other = new Client(world.server.url);
    assert.equal((await githubSignIn(other, world.fake, 'ada')).status, 302);
    const me = (await other.get('/api/me')).body;
    assert.notEqual(me.user.id, ada.id, "signed into another person's account");
    assert.equal(me.user.login, 'ada');
    assert.equal(me.user.name, 'Someone Else');
    assert.ok(!me.teams.some((t: { slug: string }) => t.slug === 'ada'), "got the old holder's personal team");
    assert.equal((await User.query(db()).findOne({ githubId: 999001 }))?.id, me.user.id);

    // Ada's next sign-in finds her account by id and brings her new login with it.
    const again = new Client(world.server.url);
    assert.equal((await githubSignIn(again, world.fake, 'ada-lovelace')).status, 302);
    const her = (await again.get('/api/me')).body;
    assert.equal(her.user.id, ada.id);
    assert.equal(her.user.login, 'ada-lovelace');
    assert.deepEqual(
      her.teams.map((t: { slug: string }) => t.slug),
      ['ada'],
    );
  });

  it('ties an account made by sign-in by login (local mode) to the GitHub id on its first GitHub sign-in', async () => {
    const local = await makeUser('lin');
    world.fake.addUser({ id: 4242, login: 'lin', name: 'Lin' });
    const client = new Client(world.server.url);
    assert.equal((await githubSignIn(client, world.fake, 'lin')).status, 302);
    assert.equal((await client.get('/api/me')).body.user.id, local.id);
    assert.equal(Number((await User.query(db()).findById(local.id))?.githubId), 4242);
    assert.equal(await User.query(db()).resultSize(), 1);
  });

  it('refuses a wrong state with a page, no session, and no call to GitHub', async () => {
    const client = new Client(world.server.url);
    const { authorizeUrl } = await startSignIn(client);
    const back = world.fake.authorize(authorizeUrl.href, 'ada');
    back.searchParams.set('state', 'x'.repeat(32));
    assertRefused(await client.get(callbackPath(back)), 400, /not valid/, client);
    assert.equal(world.fake.calls('POST', '/login/oauth/access_token').length, 0);
    assert.equal(await sessionCount(), 0);

    // No state cookie at all (another browser): refused as well.
    const stranger = new Client(world.server.url);
    assertRefused(await stranger.get(callbackPath(world.fake.authorize(authorizeUrl.href, 'ada'))), 400, /not valid/, stranger);
    assert.equal((await client.get('/api/me')).status, 401);
  });

  it('refuses a replayed callback', async () => {
    const client = new Client(world.server.url);
    const { authorizeUrl } = await startSignIn(client);
    const stateCookie = client.cookies.get('rhone_oauth_state')!;
    const path = callbackPath(world.fake.authorize(authorizeUrl.href, 'ada'));
    assert.equal((await client.get(path)).status, 302);

    // The same browser again: the state cookie was consumed, so nothing new is started.
    assert.ok(!client.cookies.has('rhone_oauth_state'));
    const replay = await client.get(path);
    assert.equal(replay.status, 400);
    assert.match(String(replay.body), /not valid/);
    assert.equal(cookieLine(replay, 'rhone_session'), undefined);
    // And from a browser without the session: still no session.
    const other = new Client(world.server.url);
    assertRefused(await other.get(path), 400, /not valid/, other);

    // Even with the old state cookie presented again, GitHub will not take the code twice.
    const withOldCookie = new Client(world.server.url);
    withOldCookie.cookies.set('rhone_oauth_state', stateCookie);
    assertRefused(await withOldCookie.get(path), 400, /GitHub did not accept/, withOldCookie);
    assert.equal(await sessionCount(), 1);
  });

  it('says sign-in was cancelled when the user denies access', async () => {
    const client = new Client(world.server.url);
    const { authorizeUrl } = await startSignIn(client);
    const res = await client.get(callbackPath(world.fake.authorize(authorizeUrl.href, 'ada', { deny: true })));
    assertRefused(res, 403, /Sign-in was cancelled/, client);
    assert.ok(!client.cookies.has('rhone_oauth_state'), 'the state cookie outlived the cancelled sign-in');
    assert.equal(world.fake.calls('POST', '/login/oauth/access_token').length, 0);
  });

  it('refuses an expired code and a code already used', async () => {
    const client = new Client(world.server.url);
    const { authorizeUrl } = await startSignIn(client);
    const back = world.fake.authorize(authorizeUrl.href, 'ada');
    world.fake.now = () => Date.now() + world.fake.codeTtlMs + 1000;
    assertRefused(await client.get(callbackPath(back)), 400, /GitHub did not accept/, client);

    world.fake.now = Date.now;
    const second = new Client(world.server.url);
    const started = await startSignIn(second);
    const code = world.fake.issueCode('ada', { redirectUri: `${PUBLIC_URL}/auth/github/callback` });
    // Someone else redeems it first.
    const stolen = await fetch(`${world.fake.url}/login/oauth/access_token`, {
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: world.fake.clientId, client_secret: world.fake.clientSecret, code }),
    });
    assert.ok((await stolen.json()).access_token);
    const res = await second.get(`/auth/github/callback?code=${code}&state=${encodeURIComponent(started.state)}`);
    assertRefused(res, 400, /GitHub did not accept/, second);
    assert.equal(await sessionCount(), 0);
    assert.ok(capture.entries().some((e) => e.msg === 'GitHub code exchange failed' && /bad_verification_code/.test(e.err?.message)));
  });

  it('answers 404 for dev login in production mode', async () => {
    const res = await new Client(world.server.url).post('/auth/dev', { login: 'ada' });
    assert.equal(res.status, 404);
    assert.equal(await User.query(db()).resultSize(), 0);
  });

  it('logs each request with an id and never the client secret or a token', async () => {
    const client = new Client(world.server.url);
    assert.equal((await githubSignIn(client, world.fake, 'ada')).status, 302);
    const requests = capture.entries().filter((e) => e.msg === 'request');
    assert.ok(requests.some((e) => e.path === '/auth/github/callback' && e.status === 302));
    for (const e of requests) assert.match(e.requestId, /^[A-Za-z0-9._-]{1,64}$/);
    assert.ok(world.fake.tokens.size > 0 && capture.text().length > 0);
    // afterEach checks the whole log for every secret of the test.
  });
});
