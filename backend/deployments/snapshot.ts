// What a deployment deploys is fixed when it is asked for: the app's settings and env vars as they
// were then. Env values stay encrypted in the snapshot (each still bound to its app and name);
// only the build stage (for the build's commands) and the deploy stage (for the machines) open them.
import type { Knex } from 'knex';
import type { EncryptionKey } from '../config.ts';
import { openValue, sealValue } from '../commands/env.ts';
import { EnvVar, type App, type AppSource } from '../models/index.ts';

export interface SnapshotSettings {
  rootDirectory: string;
  buildCommand: string | null;
  startCommand: string | null;
  region: string;
  machineSize: string;
  internalPort: number;
  healthCheckPath: string;
  instanceCount: number;
}

export interface ConfigSnapshot {
  slug: string;
  source: AppSource;
  settings: SnapshotSettings;
  env: { name: string; keyId: string; ciphertext: string }[];
}

export async function takeSnapshot(knex: Knex | Knex.Transaction, app: App): Promise<ConfigSnapshot> {
  const env = await EnvVar.query(knex).where({ appId: app.id }).orderBy('name');
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
    env: env.map((v) => ({ name: v.name, keyId: v.keyId, ciphertext: v.ciphertext.toString('base64') })),
  };
}

/** The snapshot's env vars in plain text. Call only where they are sent on (the build and deploy stages). */
export function openSnapshotEnv(keys: EncryptionKey[], appId: string, snapshot: ConfigSnapshot): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of snapshot.env) {
    out[v.name] = openValue(keys, { appId, name: v.name, keyId: v.keyId, ciphertext: Buffer.from(v.ciphertext, 'base64') });
  }
  return out;
}

/**
 * Re-encrypts the env values held in deployment snapshots under the newest key, so a rollback to an
 * old deployment still works once the old key is retired. Returns how many snapshots changed.
 */
export async function rotateSnapshotKeys(knex: Knex, keys: EncryptionKey[]): Promise<number> {
  const newest = keys[0].id;
  let rotated = 0;
  const rows = (await knex('deployments')
    .select('id', 'appId')
    .whereRaw(`exists (select 1 from jsonb_array_elements(config_snapshot->'env') e where e->>'keyId' <> ?)`, [newest])) as { id: string; appId: string }[];
  for (const { id, appId } of rows) {
    await knex.transaction(async (trx) => {
      const [row] = (await trx('deployments').where({ id }).forUpdate().select('configSnapshot')) as { configSnapshot: ConfigSnapshot }[];
      const env = row.configSnapshot.env.map((v) => {
        if (v.keyId === newest) return v;
        const plain = openValue(keys, { appId, name: v.name, keyId: v.keyId, ciphertext: Buffer.from(v.ciphertext, 'base64') });
        const sealed = sealValue(keys, appId, v.name, plain);
        return { name: v.name, keyId: sealed.keyId, ciphertext: sealed.ciphertext.toString('base64') };
      });
      await trx('deployments').where({ id }).update({ configSnapshot: JSON.stringify({ ...row.configSnapshot, env }) });
    });
    rotated += 1;
  }
  return rotated;
}
