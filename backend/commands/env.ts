import type { Knex } from 'knex';
import { EnvVar, type App, type Team } from '../models/index.ts';
import type { EncryptionKey } from '../config.ts';
import { decrypt, encrypt, SEAL_OVERHEAD_BYTES } from '../lib/crypto.ts';
import { ValidationError } from '../lib/errors.ts';
import type { Actor } from '../middleware/auth.ts';
import { recordAudit } from './audit.ts';
import { transaction } from '../lib/transaction.ts';

export const MAX_ENV_VARS = 500;
/**
 * All of an app's names and values together (the per-value limit is 64 KB, routes/env). Every
 * deployment's snapshot, every machine's config and every build carry the whole set.
 */
export const MAX_ENV_BYTES = 256 * 1024;

/** The ciphertext is bound to its app and name, so a row copied elsewhere will not decrypt. */
const aadOf = (appId: string, name: string) => `env:${appId}:${name}`;

export function sealValue(keys: EncryptionKey[], appId: string, name: string, value: string) {
  const sealed = encrypt(value, keys, aadOf(appId, name));
  return { keyId: sealed.keyId, ciphertext: sealed.data };
}

export function openValue(keys: EncryptionKey[], row: Pick<EnvVar, 'appId' | 'name' | 'keyId' | 'ciphertext'>): string {
  return decrypt({ keyId: row.keyId, data: row.ciphertext }, keys, aadOf(row.appId, row.name)).toString('utf8');
}

export async function listEnv(knex: Knex, appId: string): Promise<EnvVar[]> {
  return EnvVar.query(knex).where({ appId }).orderBy('name');
}

export async function recordReveal(knex: Knex, actor: Actor, team: Team, app: App, names: string[]): Promise<void> {
  await recordAudit(knex, { teamId: team.id, actor, action: 'env.revealed', subjectType: 'app', subjectId: app.id, data: { slug: app.slug, names } });
}

/** Sets and unsets many at once, in one transaction: all of it happens or none. */
export async function putEnv(knex: Knex, keys: EncryptionKey[], actor: Actor, team: Team, app: App, vars: Record<string, string | null>): Promise<void> {
  const set = Object.entries(vars).filter((e): e is [string, string] => e[1] !== null);
  const unset = Object.entries(vars)
    .filter(([, v]) => v === null)
    .map(([k]) => k);
  await transaction(knex, async (trx) => {
    // Serialise writers of one app so the count and size checks below hold.
    await trx('apps').where({ id: app.id }).forUpdate().first('id');
    if (unset.length > 0) await EnvVar.query(trx).delete().where({ appId: app.id }).whereIn('name', unset);
    if (set.length > 0) {
      const now = new Date();
      await trx('env_vars')
        .insert(set.map(([name, value]) => ({ appId: app.id, name, ...sealValue(keys, app.id, name, value), updatedBy: actor.user.id, updatedAt: now })))
        .onConflict(['app_id', 'name'])
        .merge(['keyId', 'ciphertext', 'updatedBy', 'updatedAt']);
    }
    // AES-GCM adds a fixed IV and tag to each value and nothing else, so the stored bytes give the
    // plaintext size exactly; measured after the writes, in the same transaction, under the lock.
    const [{ count, bytes }] = (await trx('env_vars')
      .where({ appId: app.id })
      .select(
        trx.raw('count(*)::int as count'),
        trx.raw('coalesce(sum(octet_length(name) + octet_length(ciphertext) - ?), 0)::bigint as bytes', [SEAL_OVERHEAD_BYTES]),
      )) as { count: number; bytes: string }[];
    if (count > MAX_ENV_VARS) {
      throw new ValidationError(`body.vars: an app may have at most ${MAX_ENV_VARS} env vars (this would make ${count})`);
    }
    if (Number(bytes) > MAX_ENV_BYTES) {
      const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
      throw new ValidationError(
        `body.vars: an app's env vars may take at most ${MAX_ENV_BYTES / 1024} KB (names and values); this would make ${kb(Number(bytes))}. Remove or shorten some values (large files belong in the image or object storage).`,
        [{ field: 'body.vars', message: `at most ${MAX_ENV_BYTES} bytes of names and values per app` }],
      );
    }
    await recordAudit(trx, {
      teamId: team.id,
      actor,
      action: 'env.updated',
      subjectType: 'app',
      subjectId: app.id,
      data: { slug: app.slug, set: set.map(([k]) => k), unset },
    });
  });
}

/** Re-encrypts every value under the first (newest) key. Returns how many rows changed. */
export async function rotateEnvKeys(knex: Knex, keys: EncryptionKey[], batchSize = 500): Promise<number> {
  const newest = keys[0].id;
  let rotated = 0;
  for (;;) {
    const changed = await transaction(knex, async (trx) => {
      const rows = await EnvVar.query(trx).whereNot({ keyId: newest }).limit(batchSize).forUpdate().skipLocked();
      for (const row of rows) {
        const sealed = sealValue(keys, row.appId, row.name, openValue(keys, row));
        await EnvVar.query(trx).patch(sealed).where({ appId: row.appId, name: row.name });
      }
      return rows.length;
    });
    rotated += changed;
    if (changed < batchSize) return rotated;
  }
}
