// `npm run rotate-key`: re-encrypt every env var value under the first key of
// RHONE_ENCRYPTION_KEYS. Put the new key first, keep the old ones listed until this has run.
import { configOrExit } from '../config.ts';
import { closeDb, db } from '../db.ts';
import { rotateEnvKeys } from '../commands/env.ts';
import { rotateSnapshotKeys } from '../deployments/snapshot.ts';

const config = configOrExit();
const newest = config.encryptionKeys[0].id;
const rotated = await rotateEnvKeys(db(), config.encryptionKeys);
// Deployment snapshots hold env values too (rollbacks deploy them again).
const snapshots = await rotateSnapshotKeys(db(), config.encryptionKeys);
const left = await db()('envVars').whereNot({ keyId: newest }).count<{ count: number }[]>('* as count');
console.log(
  `rhone: re-encrypted ${rotated} env var value${rotated === 1 ? '' : 's'} under key "${newest}"; ${left[0].count} remain under older keys; re-encrypted the env of ${snapshots} deployment snapshot${snapshots === 1 ? '' : 's'}.`,
);
await closeDb();
