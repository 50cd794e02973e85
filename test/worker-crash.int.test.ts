// SIGKILL of a worker in the middle of a stage: the job is taken over by another worker, the stage
// runs again (every stage is safe to repeat), and the deployment still ends live; the app keeps a
// serving machine throughout.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getConfig } from '../backend/config.ts';
import { App, Deployment } from '../backend/models/index.ts';
import { db } from '../backend/db.ts';
import { startLocalRuntime, type LocalRuntime } from '../local/main.ts';
import { startTestServer, signedIn, type Client, type TestServer } from './http.ts';
import { get, startLoad } from './support/load.ts';
import { TestRepo } from './support/git-repo.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const HELLO = path.join(ROOT, 'examples/hello-node');
const LOCK_MS = 2000;

describe('worker killed mid-stage', function () {
  this.timeout(120_000);
  let local: LocalRuntime;
  let server: TestServer;
  let ada: Client;
  let repo: TestRepo;
  let dataDir: string;
  const workers: ChildProcess[] = [];

  function startWorker(): ChildProcess {
    const config = getConfig();
    const child = spawn(process.execPath, ['--import', 'tsx', 'jobs/worker.ts', `--lock-ms=${LOCK_MS}`], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DATABASE_URL: config.databaseUrl,
        REDIS_URL: config.redisUrl,
        RHONE_DATA_DIR: dataDir,
        RHONE_MACHINES_PORT: new URL(local.machinesUrl).port,
        RHONE_ROUTER_PORT: new URL(local.routerUrl).port,
        RHONE_SESSION_SECRET: config.sessionSecret,
        RHONE_ENCRYPTION_KEYS: config.encryptionKeys.map((k) => `${k.id}:${k.key.toString('base64')}`).join(','),
        LOG_LEVEL: 'silent',
      },
      stdio: 'ignore',
    });
    workers.push(child);
    return child;
  }

  beforeEach(async () => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-crash-'));
    local = await startLocalRuntime({ dataDir, machinesPort: 0, routerPort: 0 });
    server = await startTestServer({ config: { ...getConfig(), dataDir } });
    ada = await signedIn(server.url, 'ada');
    repo = new TestRepo(HELLO);
    repo.commit('v1');
    await ada.post('/api/teams/ada/apps', { name: 'Web', slug: 'web', source: { type: 'git', url: repo.url, branch: 'main' } });
  });

  afterEach(async () => {
    for (const w of workers.splice(0)) w.kill('SIGKILL');
    await server.close();
    await local.close();
  });

  /** The Fly app Rhone named for the app (names carry a random suffix). */
  const flyAppName = async () => (await App.query(db()).findOne({ slug: 'web' }).throwIfNotFound()).flyAppName;

  async function waitFor(id: string, ok: (d: Deployment) => boolean, timeoutMs = 60_000): Promise<Deployment> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const d = await Deployment.query(db()).findById(id).throwIfNotFound();
      if (ok(d)) return d;
      if (['failed', 'canceled'].includes(d.status)) throw new Error(`deployment ${d.status}: ${d.reason}`);
      if (Date.now() > deadline) throw new Error(`deployment stuck in ${d.status}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  for (const stage of ['building', 'deploying'] as const) {
    it(`a deploy whose worker is SIGKILLed while ${stage} still goes live, and the app keeps serving`, async () => {
      const first = startWorker();
      const v1 = await ada.post('/api/apps/web/deploy', {});
      await waitFor(v1.body.id, (d) => d.status === 'live');
      assert.equal(JSON.parse((await get(local.routerUrl, 'web.localhost', '/release')).body).release, '#1');

      const pkg = JSON.parse(repo.git('show', 'HEAD:package.json')) as { scripts: Record<string, string> };
      pkg.scripts.build = stage === 'building' ? 'sleep 2 && echo built' : 'echo built';
      repo.write('package.json', JSON.stringify(pkg)).commit('v2');
      const load = startLoad(local.routerUrl, 'web.localhost', '/release', 2);
      const v2 = await ada.post('/api/apps/web/deploy', {});
      await waitFor(v2.body.id, (d) => d.status === stage);
      // For the deploy stage, wait until the new machine exists: the kill lands mid-release.
      if (stage === 'deploying') {
        const deadline = Date.now() + 20_000;
        for (;;) {
          const url = `${local.machinesUrl}/v1/apps/${await flyAppName()}/machines?metadata.rhone_deploy=${v2.body.id}`;
          const greens = (await fetch(url, { headers: { authorization: `Bearer ${local.token}` } }).then((r) => r.json())) as unknown[];
          if (greens.length > 0) break;
          assert.ok(Date.now() < deadline, 'the new machine was never created');
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      first.kill('SIGKILL');
      startWorker();
      const live = await waitFor(v2.body.id, (d) => d.status === 'live', 90_000);
      const result = await load.stop();
      assert.equal(result.failed, 0, `requests failed while the worker died: ${result.failures.slice(0, 5).join('; ')}`);
      assert.equal(JSON.parse((await get(local.routerUrl, 'web.localhost', '/release')).body).release, '#2');
      assert.ok(live.stageTimings.deploy?.finishedAt);
      const machines = (await fetch(`${local.machinesUrl}/v1/apps/${await flyAppName()}/machines`, {
        headers: { authorization: `Bearer ${local.token}` },
      }).then((r) => r.json())) as { state: string }[];
      assert.equal(machines.filter((m) => m.state === 'started').length, 1, 'one machine serves: no twin, no leftover');
    });
  }
});
