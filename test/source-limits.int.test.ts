// The clone stage refuses a repository whose checkout would be larger than the source limits
// (docs/security.md, "Limits"): a few kilobytes of pack can hold gigabytes of zeros. The limits are lowered
// here; the defaults (2 GiB, 200,000 files) are the same check at another number.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { getConfig, type Config } from '../backend/config.ts';
import { signedIn, type Client } from './http.ts';
import { until } from './local-helpers.ts';
import { TestRepo } from './support/git-repo.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';

describe('source limits in the clone stage', function () {
  this.timeout(60_000);
  let pipeline: Pipeline;
  let ada: Client;
  let repo: TestRepo;

  beforeEach(async () => {
    const base = getConfig();
    const config: Config = {
      ...base,
      dataDir: mkdtempSync(path.join(os.tmpdir(), 'rhone-source-limits-')),
      sizeLimits: { ...base.sizeLimits, sourceBytes: 64 * 1024, sourceFiles: 50 },
    };
    // Only the clone stage runs: the deployment must fail there, before anything is stored.
    pipeline = await startPipeline(config, ['clone']);
    ada = await signedIn(pipeline.server.url, 'ada');
    repo = new TestRepo();
  });
  afterEach(() => pipeline.close());

  const deployAndWait = async () => {
    const created = await ada.post('/api/teams/ada/apps', { name: 'Web', slug: 'web', source: { type: 'git', url: repo.url, branch: 'main' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const deploy = await ada.post('/api/apps/web/deploy', {});
    assert.equal(deploy.status, 202, JSON.stringify(deploy.body));
    return until(
      'the deployment to fail',
      async () => {
        const res = await ada.get(`/api/deployments/${deploy.body.id}`);
        return res.body.status === 'failed' ? res.body : undefined;
      },
      30_000,
    );
  };

  it('fails a repository whose files add up to more than RHONE_MAX_SOURCE_BYTES, naming the limit', async () => {
    repo.write('zeros.bin', '\0'.repeat(200 * 1024)).commit('a small pack, a big checkout');
    const failed = await deployAndWait();
    assert.match(failed.reason, /^The files of the repository add up to 200 KiB, over the 64 KiB limit \(RHONE_MAX_SOURCE_BYTES\)\./);
  });

  it('fails a repository with more files than RHONE_MAX_SOURCE_FILES, naming the limit', async () => {
    for (let i = 0; i < 60; i += 1) repo.write(`f${i}.txt`, String(i));
    repo.commit('many files');
    const failed = await deployAndWait();
    assert.match(failed.reason, /^The repository holds 60 files and directories, over the 50 limit \(RHONE_MAX_SOURCE_FILES\)\./);
  });
});
