// analyze: a Railpack build plan for the pinned source. Local mode uses the built-in detector;
// production runs `railpack prepare`. The app's own build and start commands win either way.
import { mkdtemp, rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import { detectPlan } from '../../backend/builder/detect.ts';
import { RAILPACK_VERSION, railpackCliVersion, railpackPrepare, resolvedVersions } from '../../backend/builder/railpack.ts';
import { Deployment } from '../../backend/models/index.ts';
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
        else
          log.warn(
            { railpackVersion: version, expected: RAILPACK_VERSION },
            'the railpack CLI is not the version Rhone pins: its plans may not build with the pinned frontend',
          );
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
      // The versions the app's live deployment was built with, so that Railpack's defaults (the
      // latest Go or Node when the app names none) do not move under the app between builds.
      const live = await Deployment.query(deps.knex)
        .where({ appId: deployment.appId, status: 'live' })
        .whereNotNull('resolvedPackages')
        .orderBy('finishedAt', 'desc')
        .first();
      const previous = live?.resolvedPackages ?? undefined;
      const { plan, info } = await railpackPrepare(work, overrides, { signal, previous });
      const resolvedPackages = resolvedVersions(info);
      const pinned = Object.entries(resolvedPackages)
        .map(([name, version]) => `${name} ${version}`)
        .join(', ');
      log(
        `Railpack prepared the build plan${pinned ? ` (${pinned})` : ''}${previous ? '; versions Railpack would have picked by default were kept from the live deployment' : ''}`,
      );
      return { plan: plan as unknown as Record<string, unknown>, resolvedPackages };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  },
};
