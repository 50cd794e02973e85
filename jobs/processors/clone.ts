// clone: fetch exactly the pinned commit into a fresh workspace and put it in the artifact store,
// from where the next stage (on any worker) takes it.
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { resolveSource } from '../../backend/deployments/source.ts';
import { fetchCommit } from '../../backend/source/git.ts';
import { sourceLimits } from '../../backend/source/limits.ts';
import { artifactStore, sourceKey } from '../artifacts.ts';
import type { StageDefinition } from '../stage.ts';

export const clone: StageDefinition = {
  stage: 'clone',
  next: 'analyze',
  async run({ deployment, snapshot, signal, log, deps }) {
    const source = await resolveSource(deps.config, snapshot.source);
    const work = await mkdtemp(path.join(deps.config.dataDir, 'work-clone-'));
    try {
      log(`Fetching commit ${deployment.commitSha?.slice(0, 12)} of ${snapshot.source.type === 'git' ? snapshot.source.url : snapshot.source.repo}`);
      const commit = await fetchCommit({
        url: source.url,
        sha: deployment.commitSha!,
        dir: work,
        credentials: source.credentials,
        publicOnly: source.publicOnly,
        signal,
        log: (line) => log(line),
        limits: sourceLimits(deps.config.sizeLimits),
      });
      await artifactStore(deps.config).putDir(sourceKey(deployment.id), work);
      log(`Fetched: ${commit.message.split('\n')[0]}`);
      return { commitMessage: deployment.commitMessage ?? commit.message };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  },
};
