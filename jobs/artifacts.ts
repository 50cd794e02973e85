import path from 'node:path';
import type { Config } from '../backend/config.ts';
import { LocalArtifactStore, type ArtifactStore } from '../backend/source/artifacts.ts';
import { S3ArtifactStore } from '../backend/source/s3-artifacts.ts';
import { artifactLimits } from '../backend/source/limits.ts';

export const sourceKey = (deploymentId: string) => `deployments/${deploymentId}/source`;

// One store (and so one S3 client with its connection pool) per configuration, not per stage run.
const stores = new WeakMap<Config, ArtifactStore>();

/**
 * The bucket when RHONE_ARTIFACTS_BUCKET is set (production requires it: stages run on any worker
 * machine); otherwise the directory under the data dir, which works only when every worker shares
 * that directory, as in local mode.
 */
export function artifactStore(config: Config): ArtifactStore {
  let store = stores.get(config);
  if (!store) {
    const limits = artifactLimits(config.sizeLimits);
    store = config.artifacts.s3 ? new S3ArtifactStore(config.artifacts.s3, { limits }) : new LocalArtifactStore(path.join(config.dataDir, 'artifacts'), limits);
    stores.set(config, store);
  }
  return store;
}
