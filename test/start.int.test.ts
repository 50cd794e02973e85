// `npm start` end to end: the real bootstrap script, a database it creates and migrates itself,
// the api + worker + scheduler processes, the printed URL, /healthz, and a clean stop.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, signedIn } from './http.ts';
import { get } from './support/load.ts';
import { TestRepo } from './support/git-repo.ts';
import { dropDatabase, flushRedis, freePort, npmStart, startRhone, testDatabaseName, testDatabaseUrl, testRedisUrl } from './support/rhone-process.ts';

/** The test settings' Postgres URL pointed at a port where nothing listens. */
function deadDatabaseUrl(port: number, dbName: string): string {
  const url = new URL(testDatabaseUrl(dbName));
  url.port = String(port);
  return url.toString();
}

describe('npm start', function () {
  this.timeout(150_000);
  // Named after the test database, so two test runs on one machine don't drop each other's; and
  // the test settings' Redis database (each test here starts and stops its own npm start).
  const dbName = `${testDatabaseName()}_start`;
  const redisUrl = testRedisUrl();

  beforeEach(async () => {
    await dropDatabase(dbName);
    // No jobs left over from an earlier run.
    await flushRedis(redisUrl);
  });
  afterEach(() => dropDatabase(dbName));

  it('creates and migrates its database, runs every process, prints the URL, answers /healthz and stops cleanly', async () => {
    const rhone = await startRhone({ dbName, redisUrl });
    const { url, port, routerPort, machinesPort, out } = rhone;
    try {
      assert.equal(url, `http://localhost:${port}`);
      assert.match(out.text, /applied \d+ migrations/);
      assert.match(out.text, /development secrets/);
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      assert.equal(health.status, 200);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      assert.deepEqual(await ready.json(), { ok: true, postgres: 'ok', redis: 'ok' });
      // The local runtime is up too: its Machines API wants a token, its router knows no app yet.
      assert.match(out.text, new RegExp(`apps are served at http://\\{slug\\}\\.localhost:${routerPort}`));
      assert.equal((await fetch(`http://127.0.0.1:${machinesPort}/v1/apps/nothing`)).status, 401);
      const page = await fetch(`http://127.0.0.1:${routerPort}/`, { headers: { host: `nothing.localhost:${routerPort}` } });
      assert.equal(page.status, 404);
      assert.match(await page.text(), /No app is deployed/);

      // The newcomer's path, through the processes npm start runs: sign in, create an app from a
      // git repository, deploy it, and reach it through the router.
      const repo = new TestRepo(path.resolve(import.meta.dirname, '../examples/hello-node'));
      repo.commit('hello');
      const ada: Client = await signedIn(`http://127.0.0.1:${port}`, 'ada');
      const created = await ada.post('/api/teams/ada/apps', { name: 'Hello', slug: 'hello', source: { type: 'git', url: repo.url, branch: 'main' } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.url, `http://hello.localhost:${routerPort}`);
      const deploy = await ada.post('/api/apps/hello/deploy', {});
      assert.equal(deploy.status, 202, JSON.stringify(deploy.body));
      const deadline = Date.now() + 60_000;
      for (;;) {
        const d = await ada.get(`/api/deployments/${deploy.body.id}`);
        if (d.body.status === 'live') break;
        assert.ok(!['failed', 'canceled'].includes(d.body.status), `deployment ${d.body.status}: ${d.body.reason}`);
        assert.ok(Date.now() < deadline, `deployment still ${d.body.status} after 60 s:\n${out.text}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const hello = await get(`http://127.0.0.1:${routerPort}`, `hello.localhost:${routerPort}`, '/');
      assert.equal(hello.status, 200);
      assert.match(hello.body, /#1/);
    } finally {
      // npm re-raises the signal its script ended on; what matters is that every process stopped
      // on its own, none reported a crash, and the port is free again.
      assert.match(await rhone.stop(), /^(exit 0|SIGINT)$/);
    }
    assert.doesNotMatch(out.text, /process stopped/);
    await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`));
  });

  it('says which service it cannot reach and how to start it', async () => {
    const deadPort = await freePort();
    const { out, exited } = npmStart({
      DATABASE_URL: deadDatabaseUrl(deadPort, dbName),
      REDIS_URL: redisUrl,
      RHONE_DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'rhone-start-')),
    });
    assert.equal(await exited, 'exit 1');
    const shown = new URL(deadDatabaseUrl(deadPort, dbName));
    if (shown.password) shown.password = '***';
    assert.ok(out.text.includes(`PostgreSQL at DATABASE_URL=${shown}`), out.text);
    assert.doesNotMatch(out.text, /Redis at REDIS_URL/);
    assert.match(out.text, /docker compose up -d/);
  });
});
