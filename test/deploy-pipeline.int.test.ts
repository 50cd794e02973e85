// The whole pipeline in local mode, through the HTTP API: deploy examples/hello-node from a git
// repository, watch it go live on the local runtime with two workers sharing the stages, reach it
// through the router; deploy again, roll back, cancel, fail a build, supersede a queued deploy.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getConfig, type Config } from '../backend/config.ts';
import { startLocalRuntime, type LocalRuntime } from '../local/main.ts';
import { signedIn, type Client } from './http.ts';
import { get } from './support/load.ts';
import { TestRepo } from './support/git-repo.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';

const HELLO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../examples/hello-node');
const TERMINAL = ['live', 'failed', 'canceled', 'superseded', 'replaced', 'skipped'];

describe('deploy pipeline (local mode, end to end)', function () {
  this.timeout(120_000);
  let local: LocalRuntime;
  let pipeline: Pipeline;
  let ada: Client;
  let repo: TestRepo;
  let config: Config;

  beforeEach(async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-pipeline-'));
    local = await startLocalRuntime({ dataDir, machinesPort: 0, routerPort: 0 });
    config = { ...getConfig(), dataDir, machinesPort: Number(new URL(local.machinesUrl).port), routerPort: Number(new URL(local.routerUrl).port) };
    // Two workers: any stage may run on either.
    pipeline = await startPipeline(config);
    ada = await signedIn(pipeline.server.url, 'ada');
    repo = new TestRepo(HELLO);
    repo.commit('first version');
    const created = await ada.post('/api/teams/ada/apps', { name: 'Web', slug: 'web', source: { type: 'git', url: repo.url, branch: 'main' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  });

  afterEach(async () => {
    await pipeline.close();
    await local.close();
  });

  async function until(id: string, statuses: string[], timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await ada.get(`/api/deployments/${id}`);
      if (statuses.includes(res.body.status)) return res.body;
      if (TERMINAL.includes(res.body.status)) throw new Error(`deployment ended ${res.body.status}: ${res.body.reason}`);
      if (Date.now() > deadline) throw new Error(`deployment still ${res.body.status} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const release = async () => JSON.parse((await get(local.routerUrl, 'web.localhost', '/release')).body).release as string;

  it('deploys, serves through the router, deploys again, and rolls back without building', async () => {
    const first = await ada.post('/api/apps/web/deploy', {});
    assert.equal(first.status, 202, JSON.stringify(first.body));
    assert.equal(first.body.status, 'queued');
    assert.equal(first.body.commitSha, repo.git('rev-parse', 'HEAD'));
    const live1 = await until(first.body.id, ['live']);
    assert.equal(live1.provider, 'node');
    assert.ok(live1.image);
    for (const stage of ['clone', 'analyze', 'build', 'deploy']) assert.ok(live1.stageTimings[stage]?.finishedAt, `${stage} timed`);
    assert.equal(await release(), '#1');

    repo.write('RELEASE', 'ignored: env wins').commit('second version');
    const second = await ada.post('/api/apps/web/deploy', {});
    await until(second.body.id, ['live']);
    assert.equal(await release(), '#2');
    assert.equal((await ada.get(`/api/deployments/${first.body.id}`)).body.status, 'replaced');

    const back = await ada.post(`/api/deployments/${first.body.id}/rollback`, {});
    assert.equal(back.status, 202, JSON.stringify(back.body));
    assert.equal(back.body.trigger, 'rollback');
    assert.equal(back.body.image, live1.image);
    const rolled = await until(back.body.id, ['live']);
    assert.equal(rolled.stageTimings.build, undefined, 'a rollback does not build');
    assert.equal(await release(), '#3');
    assert.equal((await ada.get('/api/apps/web')).body.autoDeploy, false);

    const list = await ada.get('/api/apps/web/deployments');
    assert.deepEqual(
      list.body.items.map((d: { number: number; status: string }) => [d.number, d.status]),
      [
        [3, 'live'],
        [2, 'replaced'],
        [1, 'replaced'],
      ],
    );
  });

  it('fails a build with the reason, and keeps the previous release serving', async () => {
    const ok = await ada.post('/api/apps/web/deploy', {});
    await until(ok.body.id, ['live']);
    const pkg = JSON.parse(repo.git('show', 'HEAD:package.json')) as { scripts: Record<string, string> };
    pkg.scripts.build = 'echo compiling && exit 7';
    repo.write('package.json', JSON.stringify(pkg)).commit('broken build');
    const bad = await ada.post('/api/apps/web/deploy', {});
    const failed = await until(bad.body.id, ['failed']).catch(async () => (await ada.get(`/api/deployments/${bad.body.id}`)).body);
    assert.equal(failed.status, 'failed');
    assert.match(failed.reason, /step "build" failed: `npm run build` exited with code 7/);
    assert.equal(await release(), '#1');
  });

  it('fails fast when the app crashes at start, with its own output in the deployment log', async () => {
    const patched = await ada.patch('/api/apps/web', { startCommand: 'node -e "console.error(\'boom: missing DATABASE_URL\'); process.exit(3)"' });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const started = Date.now();
    const bad = await ada.post('/api/apps/web/deploy', {});
    const failed = await until(bad.body.id, ['failed']).catch(async () => (await ada.get(`/api/deployments/${bad.body.id}`)).body);
    assert.equal(failed.status, 'failed');
    assert.match(failed.reason, /keeps crashing at start, and its process exited \d+ times \(last with exit code 3\)/);
    assert.ok(Date.now() - started < 20_000, `failed in ${Date.now() - started} ms, not at the health deadline`);
    const logs = await ada.get(`/api/deployments/${bad.body.id}/logs?limit=1000`);
    const lines = logs.body.items.map((l: { line: string }) => l.line);
    assert.ok(
      lines.some((l: string) => l.includes('boom: missing DATABASE_URL')),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l: string) => /nothing was serving before/.test(l)),
      lines.join('\n'),
    );
  });

  it('cancels a deployment mid-build; a newer deploy supersedes a queued one', async () => {
    const ok = await ada.post('/api/apps/web/deploy', {});
    await until(ok.body.id, ['live']);
    const pkg = JSON.parse(repo.git('show', 'HEAD:package.json')) as { scripts: Record<string, string> };
    pkg.scripts.build = 'echo building slowly && sleep 60';
    repo.write('package.json', JSON.stringify(pkg)).commit('slow build');
    const slow = await ada.post('/api/apps/web/deploy', {});
    await until(slow.body.id, ['building']);
    const queued = await ada.post('/api/apps/web/deploy', {});
    assert.equal(queued.body.status, 'queued');
    const newer = await ada.post('/api/apps/web/deploy', {});
    assert.equal((await ada.get(`/api/deployments/${queued.body.id}`)).body.status, 'superseded');

    const started = Date.now();
    const cancel = await ada.post(`/api/deployments/${slow.body.id}/cancel`, {});
    assert.equal(cancel.status, 202, JSON.stringify(cancel.body));
    const canceled = await until(slow.body.id, ['canceled'], 15_000);
    assert.match(canceled.reason, /Canceled by ada/);
    assert.ok(Date.now() - started < 10_000, 'the build was stopped, not waited for');
    assert.equal(await release(), '#1');
    // The newer one runs once the canceled one is out of the way (and hangs in its slow build: cancel it too).
    await until(newer.body.id, ['building']);
    await ada.post(`/api/deployments/${newer.body.id}/cancel`, {});
    await until(newer.body.id, ['canceled'], 15_000);
    const again = await ada.post(`/api/deployments/${newer.body.id}/cancel`, {});
    assert.equal(again.status, 409);
  });
});
