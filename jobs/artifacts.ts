import path from 'node:path';
import type { Config } from '../backend/config.ts';
import { LocalArtifactStore, type ArtifactStore } from '../backend/source/artifacts.ts';

export const sourceKey = (deploymentId: string) => `deployments/${deploymentId}/source`;

/** Local mode and single-host setups share a directory; production's object store is not built yet. */
export function artifactStore(config: Config): ArtifactStore {
  return new LocalArtifactStore(path.join(config.dataDir, 'artifacts'));
}
