// What a deployment deploys is fixed when it is asked for: the app's settings and env vars as they
// were then. Env values stay encrypted (each still bound to its app and name); only the build stage
// (for the build's commands) and the deploy stage (for the machines) open them.
// The env is not copied into each deployment: an app's env set is stored once per distinct content
// in env_versions (unique by app and hash of the sealed list) and the snapshot holds its id, so
// deploying again with an unchanged env adds nothing, and a rollback reuses its target's version.
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import type { EncryptionKey } from '../config.ts';
import { openValue, sealValue } from '../commands/env.ts';
import { EnvVar, type App, type AppSource } from '../models/index.ts';

import type { AppSettings } from '../lib/api-types.ts';

/** The app's settings as they were when the deployment was asked for. */
export type SnapshotSettings = AppSettings;

/** One env var as a snapshot holds it: still sealed, the ciphertext base64. */
export interface SealedEnvVar {
  name: string;
  keyId: string;
  ciphertext: string;
}

export interface ConfigSnapshot {
  slug: string;
  source: AppSource;
  settings: SnapshotSettings;
  /** The env_versions row holding the env: every snapshot taken since env versions exist. */
  envVersionId?: string;
  /**
   * The env inline, as snapshots held it before env versions. The migration moved existing ones;
   * still read (and rotated) for a row an older api process writes during a rolling upgrade.
   */
  env?: SealedEnvVar[];
}

type Db = Knex | Knex.Transaction;

/** Identifies an env set by its sealed content (never its plaintext). */
const hashOf = (vars: SealedEnvVar[]) =>
  createHash('sha256')
    .update(JSON.stringify(vars.map((v) => [v.name, v.keyId, v.ciphertext])))
    .digest('hex');

/** The id of the app's env version with exactly these sealed vars, stored if it is new. */
async function storeEnvVersion(knex: Db, appId: string, vars: SealedEnvVar[]): Promise<string> {
  const hash = hashOf(vars);
  const inserted = (await knex('env_versions')
    .insert({ appId, hash, vars: JSON.stringify(vars) })
    .onConflict(['app_id', 'hash'])
    .ignore()
    .returning('id')) as { id: string }[];
  if (inserted.length > 0) return inserted[0].id;
  const existing = (await knex('env_versions').where({ appId, hash }).first('id')) as { id: string } | undefined;
  if (!existing) throw new Error(`env version ${hash.slice(0, 12)} of app ${appId} vanished while being stored`);
  return existing.id;
}

export async function takeSnapshot(knex: Db, app: App): Promise<ConfigSnapshot> {
  const env = await EnvVar.query(knex).where({ appId: app.id }).orderBy('name');
  const vars = env.map((v) => ({ name: v.name, keyId: v.keyId, ciphertext: v.ciphertext.toString('base64') }));
  return {
    slug: app.slug,
    source: app.source,
    settings: {
      rootDirectory: app.rootDirectory,
      buildCommand: app.buildCommand,
      startCommand: app.startCommand,
      region: app.region,
      machineSize: app.machineSize,
      internalPort: app.internalPort,
      healthCheckPath: app.healthCheckPath,
      instanceCount: app.instanceCount,
    },
    envVersionId: await storeEnvVersion(knex, app.id, vars),
  };
}

/** The snapshot's sealed env vars, wherever they are kept. */
async function sealedEnvOf(knex: Db, appId: string, snapshot: ConfigSnapshot): Promise<SealedEnvVar[]> {
  if (snapshot.env) return snapshot.env;
  if (!snapshot.envVersionId) return [];
  // Bound to the app too: a snapshot cannot borrow another app's env (nor would it decrypt).
  const row = (await knex('env_versions').where({ id: snapshot.envVersionId, appId }).first('vars')) as { vars: SealedEnvVar[] } | undefined;
  if (!row) throw new Error(`the deployment's env version ${snapshot.envVersionId} is missing`);
  return row.vars;
}

/** The snapshot's env vars in plain text. Call only where they are sent on (the build and deploy stages). */
export async function openSnapshotEnv(knex: Db, keys: EncryptionKey[], appId: string, snapshot: ConfigSnapshot): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const v of await sealedEnvOf(knex, appId, snapshot)) {
    out[v.name] = openValue(keys, { appId, name: v.name, keyId: v.keyId, ciphertext: Buffer.from(v.ciphertext, 'base64') });
  }
  return out;
}

/** The list sealed again under the newest key (values already under it are kept as they are). */
function resealed(keys: EncryptionKey[], appId: string, vars: SealedEnvVar[]): SealedEnvVar[] {
  return vars.map((v) => {
    if (v.keyId === keys[0].id) return v;
    const plain = openValue(keys, { appId, name: v.name, keyId: v.keyId, ciphertext: Buffer.from(v.ciphertext, 'base64') });
    const sealed = sealValue(keys, appId, v.name, plain);
    return { name: v.name, keyId: sealed.keyId, ciphertext: sealed.ciphertext.toString('base64') };
  });
}

/**
 * Re-encrypts the env values deployments deploy (the env versions, and any snapshot still holding
 * its env inline) under the newest key, so a rollback to an old deployment still works once the
 * old key is retired. A version keeps its hash: it names the content it was stored for, whose
 * values are unchanged. Returns how many env versions and inline snapshots changed.
 */
export async function rotateSnapshotKeys(knex: Knex, keys: EncryptionKey[]): Promise<number> {
  const newest = keys[0].id;
  let rotated = 0;
  const stale = `exists (select 1 from jsonb_array_elements(??) e where e->>'keyId' <> ?)`;
  const versions = (await knex('env_versions').select('id', 'appId').whereRaw(stale, ['vars', newest])) as { id: string; appId: string }[];
  for (const { id, appId } of versions) {
    await knex.transaction(async (trx) => {
      const [row] = (await trx('env_versions').where({ id }).forUpdate().select('vars')) as { vars: SealedEnvVar[] }[];
      await trx('env_versions')
        .where({ id })
        .update({ vars: JSON.stringify(resealed(keys, appId, row.vars)) });
    });
    rotated += 1;
  }
  const inline = (await knex('deployments')
    .select('id', 'appId')
    .whereRaw(
      `jsonb_typeof(config_snapshot->'env') = 'array' and exists (select 1 from jsonb_array_elements(config_snapshot->'env') e where e->>'keyId' <> ?)`,
      [newest],
    )) as { id: string; appId: string }[];
  for (const { id, appId } of inline) {
    await knex.transaction(async (trx) => {
      const [row] = (await trx('deployments').where({ id }).forUpdate().select('configSnapshot')) as { configSnapshot: ConfigSnapshot }[];
      const env = resealed(keys, appId, row.configSnapshot.env ?? []);
      await trx('deployments')
        .where({ id })
        .update({ configSnapshot: JSON.stringify({ ...row.configSnapshot, env }) });
    });
    rotated += 1;
  }
  return rotated;
}
