// build: run the plan. Local mode runs its commands natively and stores the result as an image
// of the local runtime; production builds with BuildKit and pushes to Fly's registry.
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { buildLocal } from '../../backend/builder/local-build.ts';
import type { BuildPlan } from '../../backend/builder/plan.ts';
import { artifactStore, sourceKey } from '../artifacts.ts';
import { UserFacingError, type StageDefinition } from '../stage.ts';

const STEP_TIMEOUT_MS = 15 * 60_000;

export const build: StageDefinition = {
  stage: 'build',
  next: 'deploy',
  async run({ deployment, snapshot, signal, log, deps }) {
    if (!deployment.plan) throw new Error('the deployment has no build plan yet');
    if (!deps.config.isLocal) {
      throw new UserFacingError('Production builds need the BuildKit builder (builder-image/), which is not connected in this installation yet.');
    }
    const work = await mkdtemp(path.join(deps.config.dataDir, 'work-build-'));
    try {
      await artifactStore(deps.config).getDir(sourceKey(deployment.id), work);
      const { provider: _provider, ...plan } = deployment.plan as { provider?: string } & Record<string, unknown>;
      const sourceDir = path.join(work, snapshot.settings.rootDirectory || '.');
      const result = await buildLocal({
        sourceDir,
        plan: plan as unknown as BuildPlan,
        dataDir: deps.config.dataDir,
        imageName: snapshot.slug,
        tag: deployment.id,
        signal,
        stepTimeoutMs: STEP_TIMEOUT_MS,
        log: (stream, line) => log(line, stream),
      });
      log(`Built image ${result.image} in ${(result.durationMs / 1000).toFixed(1)} s`);
      return { image: result.image };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  },
};
