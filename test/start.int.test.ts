// `npm start` end to end: the real bootstrap script, a database it creates and migrates itself,
// the api + worker + scheduler processes, the printed URL, /healthz, and a clean stop.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { Client, signedIn } from './http.ts';
import { get } from './support/load.ts';
import { TestRepo } from './support/git-repo.ts';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function dropDatabase(name: string) {
  const client = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/postgres' });
  await client.connect();
  await client.query(`drop database if exists "${name}" with (force)`);
  await client.end();
}

function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, ...extra };
  return env;
}

describe('npm start', function () {
  this.timeout(150_000);
  const dbName = 'rhone_start_test';

  beforeEach(async () => {
    await dropDatabase(dbName);
    // npm start's own Redis database: no jobs left over from an earlier run.
    const r = new Redis('redis://127.0.0.1:6379/9');
    await r.flushdb();
    r.disconnect();
  });
  afterEach(() => dropDatabase(dbName));

  it('creates and migrates its database, runs every process, prints the URL, answers /healthz and stops cleanly', async () => {
    const port = await freePort();
    const routerPort = await freePort();
    const machinesPort = await freePort();
    const child = spawn('npm', ['start'], {
      cwd: path.resolve(import.meta.dirname, '..'),
      env: baseEnv({
        PORT: String(port),
        RHONE_ROUTER_PORT: String(routerPort),
        RHONE_MACHINES_PORT: String(machinesPort),
        DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${dbName}`,
        REDIS_URL: 'redis://127.0.0.1:6379/9',
        RHONE_DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'rhone-start-')),
        LOG_LEVEL: 'warn',
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<string>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? `exit ${code}`)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no URL printed within 60 s:\n${output}`)), 60_000);
        const check = () => {
          const m = /Rhone is running in local mode at (http:\/\/[^\s;]+)/.exec(output);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]);
          }
        };
        child.stdout.on('data', check);
        void exited.then((how) => reject(new Error(`npm start ended (${how}) before printing the URL:\n${output}`)));
      });
      assert.equal(url, `http://localhost:${port}`);
      assert.match(output, /applied \d+ migrations/);
      assert.match(output, /development secrets/);
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      assert.equal(health.status, 200);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      assert.deepEqual(await ready.json(), { ok: true, postgres: 'ok', redis: 'ok' });
      // The local runtime is up too: its Machines API wants a token, its router knows no app yet.
      assert.match(output, new RegExp(`apps are served at http://\\{slug\\}\\.localhost:${routerPort}`));
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
        assert.ok(Date.now() < deadline, `deployment still ${d.body.status} after 60 s:\n${output}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const hello = await get(`http://127.0.0.1:${routerPort}`, `hello.localhost:${routerPort}`, '/');
      assert.equal(hello.status, 200);
      assert.match(hello.body, /#1/);
    } finally {
      // What Ctrl-C does: SIGINT to the whole process group.
      process.kill(-child.pid!, 'SIGINT');
    }
    // npm re-raises the signal its script ended on; what matters is that every process stopped
    // on its own, none reported a crash, and the port is free again.
    assert.match(await exited, /^(exit 0|SIGINT)$/);
    assert.doesNotMatch(output, /process stopped/);
    await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`));
  });

  it('says which service it cannot reach and how to start it', async () => {
    const deadPort = await freePort();
    const child = spawn('npm', ['start'], {
      cwd: path.resolve(import.meta.dirname, '..'),
      env: baseEnv({
        DATABASE_URL: `postgres://postgres@127.0.0.1:${deadPort}/${dbName}`,
        REDIS_URL: 'redis://127.0.0.1:6379/9',
        RHONE_DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'rhone-start-')),
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 1);
    assert.match(output, new RegExp(`PostgreSQL at DATABASE_URL=postgres://postgres@127.0.0.1:${deadPort}/`));
    assert.doesNotMatch(output, /Redis at REDIS_URL/);
    assert.match(output, /docker compose up -d/);
  });
});
