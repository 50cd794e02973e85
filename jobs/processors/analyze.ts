// analyze: a Railpack build plan for the pinned source. Local mode uses the built-in detector;
// production runs `railpack prepare`. The app's own build and start commands win either way.
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { detectPlan } from '../../backend/builder/detect.ts';
import { railpackPrepare } from '../../backend/builder/railpack.ts';
import { artifactStore, sourceKey } from '../artifacts.ts';
import type { StageDefinition } from '../stage.ts';

export const analyze: StageDefinition = {
  stage: 'analyze',
  next: 'build',
  async run({ deployment, snapshot, signal, log, deps }) {
    const work = await mkdtemp(path.join(deps.config.dataDir, 'work-analyze-'));
    try {
      await artifactStore(deps.config).getDir(sourceKey(deployment.id), work);
      const overrides = {
        rootDirectory: snapshot.settings.rootDirectory,
        buildCommand: snapshot.settings.buildCommand,
        startCommand: snapshot.settings.startCommand,
      };
      if (deps.config.isLocal) {
        const { provider, plan } = await detectPlan(work, overrides);
        log(`Detected a ${provider} app`);
        return { plan: { provider, ...plan } as Record<string, unknown> };
      }
      const { plan } = await railpackPrepare(work, overrides, { signal });
      log('Railpack prepared the build plan');
      return { plan: plan as unknown as Record<string, unknown> };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  },
};
