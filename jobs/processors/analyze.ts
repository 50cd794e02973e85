// analyze: a Railpack build plan for the pinned source. Local mode uses the built-in detector;
// production runs `railpack prepare`. The app's own build and start commands win either way.
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { detectPlan } from '../../backend/builder/detect.ts';
import { RAILPACK_VERSION, railpackCliVersion, railpackPrepare } from '../../backend/builder/railpack.ts';
import { artifactStore, sourceKey } from '../artifacts.ts';
import type { StageDefinition } from '../stage.ts';
import { workDirPrefix } from '../work-dirs.ts';

const railpackChecked = new Map<string, Promise<void>>();

/**
 * Once per worker process (and CLI): logs which railpack the image has, and warns when it is not
 * the version Rhone pins, since the plans it writes are built by the frontend image of that version.
 */
export function checkRailpackOnce(log: Logger, railpackBin = 'railpack'): Promise<void> {
  let checked = railpackChecked.get(railpackBin);
  if (!checked) {
    checked = railpackCliVersion(railpackBin).then(
      (version) => {
        if (version === RAILPACK_VERSION) log.info({ railpackVersion: version }, 'railpack CLI');
        else log.warn({ railpackVersion: version, expected: RAILPACK_VERSION }, 'the railpack CLI is not the version Rhone pins: its plans may not build with the pinned frontend');
      },
      (err: unknown) => {
        railpackChecked.delete(railpackBin); // ask again next time; railpack prepare reports a missing CLI itself
        log.warn({ err }, 'could not read the railpack CLI version');
      },
    );
    railpackChecked.set(railpackBin, checked);
  }
  return checked;
}

export const analyze: StageDefinition = {
  stage: 'analyze',
  next: 'build',
  async run({ deployment, snapshot, signal, log, deps }) {
    const work = await mkdtemp(workDirPrefix(deps.config.dataDir, 'analyze'));
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
      await checkRailpackOnce(deps.log);
      const { plan } = await railpackPrepare(work, overrides, { signal });
      log('Railpack prepared the build plan');
      return { plan: plan as unknown as Record<string, unknown> };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  },
};
