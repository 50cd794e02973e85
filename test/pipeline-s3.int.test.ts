// The pipeline as production runs it between its workers: clone → analyze → build in local mode,
// but with the S3 artifact store (an in-test S3, spoken to by the real AWS SDK) and two workers,
// so no stage can lean on another's disk. The build's commands see the app's env vars, and the
// stored log shows them redacted.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getConfig, type Config } from '../backend/config.ts';
import { REDACTED } from '../backend/deployments/events.ts';
import { imageDir } from '../local/images.ts';
import { signedIn, type Client } from './http.ts';
import { TestRepo } from './support/git-repo.ts';
import { FakeS3 } from './support/fake-s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';

const HELLO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../examples/hello-node');
const SECRET = 'tok-4f8a9c2e-do-not-print';

describe('pipeline with the S3 artifact store (clone → analyze → build, two workers)', function () {
  this.timeout(90_000);
  let fake: FakeS3;
  let pipeline: Pipeline;
  let ada: Client;
  let repo: TestRepo;
  let config: Config;

  beforeEach(async () => {
    fake = await FakeS3.start();
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-pipeline-s3-'));
    config = { ...getConfig(), dataDir, artifacts: { s3: fake.settings() } };
    pipeline = await startPipeline(config, ['clone', 'analyze', 'build']);
    ada = await signedIn(pipeline.server.url, 'ada');
    repo = new TestRepo(HELLO);
    const pkg = JSON.parse(readFileSync(path.join(HELLO, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    pkg.scripts.build = 'echo "building with $API_TOKEN" && printf %s "$API_TOKEN" > token.txt';
    repo.write('package.json', JSON.stringify(pkg)).commit('a build that uses an env var');
    const created = await ada.post('/api/teams/ada/apps', { name: 'Web', slug: 'web', source: { type: 'git', url: repo.url, branch: 'main' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const env = await ada.put('/api/apps/web/env', { vars: { API_TOKEN: SECRET } });
    assert.equal(env.status, 200, JSON.stringify(env.body));
  });

  afterEach(async () => {
    await pipeline.close();
    await fake.close();
  });

  /** Deploys and waits until the build stage is done (no worker takes the deploy stage here). */
  async function built(): Promise<{ id: string; image: string }> {
    const started = await ada.post('/api/apps/web/deploy', {});
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const deadline = Date.now() + 60_000;
    for (;;) {
      const d = (await ada.get(`/api/deployments/${started.body.id}`)).body;
      if (d.image && d.stageTimings?.build?.finishedAt) return d;
      if (['failed', 'canceled'].includes(d.status)) throw new Error(`deployment ${d.status}: ${d.reason}`);
      if (Date.now() > deadline) throw new Error(`deployment still ${d.status}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('hands the source from stage to stage through the bucket, never the data directory', async () => {
    const d = await built();
    assert.deepEqual(fake.keys(), [`deployments/${d.id}/source.tar.gz`]);
    assert.equal(fake.ops.PutObject, 1, 'clone stored the source once');
    assert.equal(fake.ops.GetObject, 2, 'analyze and build each fetched it');
    assert.equal(fake.unauthorized, 0);
    assert.equal(existsSync(path.join(config.dataDir, 'artifacts')), false, 'no stage used the directory store');
  });

  it("gives the build commands the app's env vars, and stores the log with their values redacted", async () => {
    const d = await built();
    assert.equal(readFileSync(path.join(imageDir(config.dataDir, d.image), 'token.txt'), 'utf8'), SECRET, 'the build step saw the value');
    const logs = await ada.get(`/api/deployments/${d.id}/logs?limit=1000`);
    const lines = (logs.body.items as { line: string }[]).map((l) => l.line);
    assert.ok(lines.includes(`building with ${REDACTED}`), lines.join('\n'));
    assert.ok(!lines.some((l) => l.includes(SECRET)), 'the value is nowhere in the stored log');
  });
});
