// Env values stay out of everything a deployment leaves behind, whatever their size: a 44,000-
// character value (a CA bundle, a base64 key) once made the redactor's regex throw, and the error,
// holding every value, became the deployment's reason. Local mode, end to end, through the API.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'bullmq';
import { getConfig, type Config } from '../backend/config.ts';
import { db } from '../backend/db.ts';
import { redis } from '../backend/redis.ts';
import { createLogger } from '../backend/lib/logger.ts';
import { startWorkers } from '../jobs/worker.ts';
import { startLocalRuntime, type LocalRuntime } from '../local/main.ts';
import { signedIn, startTestServer, type Client, type TestServer } from './http.ts';
import { TestRepo } from './support/git-repo.ts';
import { until } from './local-helpers.ts';

const HELLO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../examples/hello-node');
const ENDED = ['live', 'failed', 'canceled', 'superseded'];

/** Pieces of the secret that show in the text (every 12-character window): what a reader could piece together. */
function leaks(text: string, secret: string): string[] {
  const found: string[] = [];
  for (let i = 0; i + 12 <= secret.length; i += 12) if (text.includes(secret.slice(i, i + 12))) found.push(secret.slice(i, i + 12));
  return found;
}

/** Everything BullMQ keeps in Redis: job hashes (data, failedReason, stacktrace, returnvalue), lists, sets, streams. */
async function redisDump(): Promise<string> {
  const r = redis();
  const parts: string[] = [];
  for (const key of await r.keys('*')) {
    const type = await r.type(key);
    if (type === 'hash') parts.push(JSON.stringify(await r.hgetall(key)));
    else if (type === 'string') parts.push((await r.get(key)) ?? '');
    else if (type === 'list') parts.push(...(await r.lrange(key, 0, -1)));
    else if (type === 'zset') parts.push(...(await r.zrange(key, 0, -1)));
    else if (type === 'set') parts.push(...(await r.smembers(key)));
    else if (type === 'stream') parts.push(JSON.stringify(await r.xrange(key, '-', '+')));
  }
  return parts.join('\n');
}

describe('secrets in deployments (local mode, end to end)', function () {
  this.timeout(120_000);
  let local: LocalRuntime;
  let server: TestServer;
  let workers: Worker[];
  let ada: Client;
  let repo: TestRepo;
  let workerLog: string;
  const bigKey = randomBytes(33_000).toString('base64'); // 44,000 characters
  const shortToken = `tok-${randomUUID()}`;

  beforeEach(async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-secrets-'));
    local = await startLocalRuntime({ dataDir, machinesPort: 0, routerPort: 0 });
    const config: Config = {
      ...getConfig(),
      dataDir,
      machinesPort: Number(new URL(local.machinesUrl).port),
      routerPort: Number(new URL(local.routerUrl).port),
    };
    const queues = { connection: { url: config.redisUrl, maxRetriesPerRequest: null }, prefix: `t-${randomUUID()}` };
    server = await startTestServer({ config, queues });
    workerLog = '';
    const sink = new Writable({
      write(chunk, _enc, done) {
        workerLog += String(chunk);
        done();
      },
    });
    workers = startWorkers({
      connection: queues.connection,
      prefix: queues.prefix,
      knex: db(),
      log: createLogger('debug', sink),
      config,
      only: ['clone', 'analyze', 'build', 'deploy'],
    });
    ada = await signedIn(server.url, 'ada');
    repo = new TestRepo(HELLO);
    const created = await ada.post('/api/teams/ada/apps', { name: 'Web', slug: 'web', source: { type: 'git', url: repo.url, branch: 'main' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const env = await ada.put('/api/apps/web/env', { vars: { BIG_KEY: bigKey, SHORT_TOKEN: shortToken } });
    assert.equal(env.status, 200, JSON.stringify(env.body));
  });

  afterEach(async () => {
    await Promise.all(workers.map((w) => w.close()));
    await server.close();
    await local.close();
  });

  function withBuild(script: string): void {
    const pkg = JSON.parse(repo.git('show', 'HEAD:package.json').toString()) as { scripts: Record<string, string> };
    pkg.scripts.build = script;
    repo.write('package.json', JSON.stringify(pkg)).commit('build script');
  }

  async function deployToEnd(): Promise<Record<string, unknown>> {
    const started = await ada.post('/api/apps/web/deploy', {});
    assert.equal(started.status, 202, JSON.stringify(started.body));
    return until(
      'the deployment to end',
      async () => {
        const res = await ada.get(`/api/deployments/${started.body.id}`);
        return ENDED.includes(res.body.status) ? res.body : undefined;
      },
      90_000,
    );
  }

  /** Every place a deployment's text ends up, as one string. */
  async function everything(id: string): Promise<string> {
    const events = await db()('deployment_events').where({ deploymentId: id }).orderBy('seq');
    const row = await db()('deployments').where({ id }).first();
    const api = await ada.get(`/api/deployments/${id}`);
    const logs = await ada.get(`/api/deployments/${id}/logs?limit=1000`);
    return [JSON.stringify(events), JSON.stringify(row.reason), JSON.stringify(api.body), JSON.stringify(logs.body), await redisDump(), workerLog].join('\n');
  }

  it('goes live with a 44,000-character env value, and neither value shows anywhere, even printed by the build', async () => {
    // The build prints both values: the long one as one 44,000-character line, cut into 16 KB pieces.
    repo.commit('first');
    withBuild('echo "key: $BIG_KEY" && echo "token: $SHORT_TOKEN" && echo "$SHORT_TOKEN$BIG_KEY" | head -c 70000');
    const done = await deployToEnd();
    assert.equal(done.status, 'live', `ended ${done.status}: ${String(done.reason).slice(0, 300)}`);
    const all = await everything(String(done.id));
    assert.deepEqual(leaks(all, bigKey), []);
    assert.ok(!all.includes(shortToken), 'the short value leaked');
    const lines = (await ada.get(`/api/deployments/${done.id}/logs?limit=1000`)).body.items.map((l: { line: string }) => l.line) as string[];
    assert.ok(lines.includes('key: [redacted]'), lines.join('\n').slice(0, 2000));
    assert.ok(lines.includes('token: [redacted]'));
  });

  it("redacts a failed build's last output in its reason", async () => {
    repo.commit('first');
    withBuild('echo "connecting with $SHORT_TOKEN" >&2 && echo "$BIG_KEY" && exit 3');
    const done = await deployToEnd();
    assert.equal(done.status, 'failed');
    const reason = String(done.reason);
    assert.match(reason, /step "build" failed: `npm run build` exited with code 3/);
    assert.match(reason, /connecting with \[redacted\]/);
    assert.ok(reason.length <= 2048, `a reason of ${reason.length} characters`);
    const all = await everything(String(done.id));
    assert.ok(!all.includes(shortToken), 'the short value leaked');
    assert.deepEqual(leaks(all, bigKey), []);
  });
});
