// What the api writes to its log: one line per request with its request id, and never a secret: not an
// env var value, an API token, the session or CSRF cookie, nor GitHub's client secret or tokens.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { db } from '../backend/db.ts';
import { Team, User } from '../backend/models/index.ts';
import { makeApp } from './factories.ts';
import { Client, type Res } from './http.ts';
import { captureLog, useGithubWorld, githubSignIn } from './support/github-signin.ts';

describe('request log', () => {
  // Request lines are at debug (npm start's terminal shows what matters; LOG_LEVEL=debug shows them).
  const capture = captureLog('debug');
  const world = useGithubWorld(capture.log);

  it('has a request id on every request line and no secret anywhere', async () => {
    capture.lines.length = 0;
    const answered: Res[] = [];
    const track = (res: Res): Res => {
      answered.push(res);
      return res;
    };

    world.fake.addUser({ id: 7001, login: 'ada', name: 'Ada', emails: [{ email: 'ada@example.com', primary: true, verified: true }] });
    const ada = new Client(world.server.url);
    const signIn = track(await githubSignIn(ada, world.fake, 'ada'));
    assert.equal(signIn.status, 302);
    const session = ada.cookies.get('rhone_session')!;
    const csrf = ada.cookies.get('rhone_csrf')!;
    assert.ok(session && csrf);

    const user = await User.query(db()).findOne({ login: 'ada' }).throwIfNotFound();
    await makeApp(user, await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound(), 'web');
    const secret = `canary-${randomBytes(16).toString('hex')}`;
    assert.equal(track(await ada.put('/api/apps/web/env', { vars: { API_KEY: secret } })).status, 200);
    const revealed = track(await ada.get('/api/apps/web/env?reveal=1'));
    assert.ok(JSON.stringify(revealed.body).includes(secret), 'reveal did not show the value');
    // Refused writes carrying the secret: a bad name, and malformed JSON.
    assert.equal(track(await ada.put('/api/apps/web/env', { vars: { 'bad-name': secret } })).status, 400);
    assert.equal(track(await ada.request('PUT', '/api/apps/web/env', `{"vars":{"API_KEY":"${secret}"`)).status, 400);

    const created = track(await ada.post('/api/tokens', { name: 'ci', scope: 'admin' }));
    assert.equal(created.status, 201);
    const token: string = created.body.token;
    const api = new Client(world.server.url).withToken(token);
    assert.equal(track(await api.get('/api/me')).body.user.login, 'ada');
    assert.equal(track(await api.put('/api/apps/web/env', { vars: { OTHER: secret } })).status, 200);
    const wrongToken = `rhone_${randomBytes(24).toString('base64url')}`;
    assert.equal(track(await new Client(world.server.url).withToken(wrongToken).get('/api/me')).status, 401);

    // A sane incoming request id is kept; a wild one is replaced.
    const kept = track(await ada.request('GET', '/api/me', undefined, { 'x-request-id': 'edge-7f3a.1' }));
    assert.equal(kept.headers.get('x-request-id'), 'edge-7f3a.1');
    const replaced = track(await ada.request('GET', '/api/me', undefined, { 'x-request-id': `bad id ${secret}` }));
    assert.notEqual(replaced.headers.get('x-request-id'), `bad id ${secret}`);
    assert.equal(track(await ada.post('/auth/logout')).status, 204);

    const log = capture.text();
    const secrets: Record<string, string> = {
      'env var value': secret,
      'API token': token,
      'API token secret part': token.slice(12),
      'wrong token': wrongToken,
      'session cookie': session,
      'CSRF token': csrf,
      'GitHub client secret': world.fake.clientSecret,
    };
    for (const t of world.fake.tokens.keys()) secrets[`GitHub token ${t.slice(0, 4)}`] = t;
    for (const r of world.fake.calls('POST', '/login/oauth/access_token')) secrets['OAuth code'] = r.body.code;
    for (const [what, value] of Object.entries(secrets)) assert.ok(!log.includes(value), `the log contains the ${what}`);

    const lines = capture.entries().filter((e) => e.msg === 'request');
    for (const e of lines) {
      assert.match(e.requestId, /^[A-Za-z0-9._-]{1,64}$/, JSON.stringify(e));
      assert.deepEqual(Object.keys(e).sort(), ['level', 'method', 'ms', 'msg', 'path', 'requestId', 'status', 'time']);
      assert.equal(e.level, 20, `a request line is logged at debug: ${JSON.stringify(e)}`);
    }
    // One line per request, under the id the response carried (the sign-in was two requests).
    const ids = lines.map((e) => e.requestId);
    assert.equal(new Set(ids).size, ids.length);
    for (const res of answered) assert.ok(ids.includes(res.headers.get('x-request-id')!), `no log line for request ${res.headers.get('x-request-id')}`);
    assert.equal(lines.length, answered.length + 1);
    assert.ok(lines.some((e) => e.path === '/api/apps/web/env' && e.method === 'PUT' && e.status === 200));
  });

  it('logs an HTTP client error without the request and response it carries', () => {
    const cap = captureLog('info');
    const secret = `s-${randomBytes(12).toString('hex')}`;
    // The shape of octokit's RequestError: the request body is kept as sent.
    const err = Object.assign(new Error('Bad gateway'), {
      name: 'HttpError',
      status: 502,
      request: {
        method: 'POST',
        url: 'https://github.com/login/oauth/access_token',
        headers: { authorization: 'token [REDACTED]' },
        body: JSON.stringify({ client_secret: secret }),
      },
      response: { url: 'https://github.com/login/oauth/access_token', status: 502, headers: { 'set-cookie': secret }, data: { echoed: secret } },
    });
    cap.log.error({ err }, 'request failed');
    const [entry] = cap.entries();
    assert.equal(entry.err.message, 'Bad gateway');
    assert.equal(entry.err.status, 502);
    assert.match(entry.err.stack, /Bad gateway/);
    assert.ok(!cap.text().includes(secret), cap.text());
  });
});
