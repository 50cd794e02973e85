import { createHash } from 'node:crypto';
import type { Knex } from 'knex';

// A deployment's env used to be copied, every ciphertext, into its config_snapshot: 28 MB of env
// made the deployments table 39 MB in one deploy. Now an app's env set is stored once per
// distinct content (env_versions, unique by app and hash) and a snapshot holds its id.
// Existing deployments are moved here: their inline env becomes a version (deployments sharing an
// env share one) and their snapshot references it. The readers still accept inline env, for rows
// an older api process writes during a rolling upgrade.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('env_versions', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('app_id').notNullable().references('apps.id').onDelete('CASCADE');
    // sha256 of the sealed list (names, key ids, ciphertexts): never of plaintext.
    t.text('hash').notNullable();
    // [{ name, keyId, ciphertext (base64) }], sorted by name, as deployments held them inline.
    t.jsonb('vars').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['app_id', 'hash']);
  });
  await moveInlineEnv(knex);
}

export async function down(knex: Knex): Promise<void> {
  // Put the env back inline, so the older code finds it where it looked.
  await knex.raw(`
    update deployments d
       set config_snapshot = (d.config_snapshot - 'envVersionId') || jsonb_build_object('env', v.vars)
      from env_versions v
     where v.id::text = d.config_snapshot->>'envVersionId'`);
  await knex.schema.dropTable('env_versions');
}

interface SealedVar {
  name: string;
  keyId: string;
  ciphertext: string;
}

/** The same hash backend/deployments/snapshot.ts computes; kept here so this migration never changes. */
const hashOf = (vars: SealedVar[]) =>
  createHash('sha256')
    .update(JSON.stringify(vars.map((v) => [v.name, v.keyId, v.ciphertext])))
    .digest('hex');

const BATCH = 200;

/** Moves every inline snapshot env into env_versions. Exported for its test. */
export async function moveInlineEnv(knex: Knex): Promise<number> {
  let moved = 0;
  for (;;) {
    // Column aliases without underscores read the same whether or not the connection maps case.
    const { rows } = (await knex.raw(
      `select id, app_id as app, config_snapshot->'env' as env from deployments where config_snapshot->'env' is not null order by id limit ?`,
      [BATCH],
    )) as {
      rows: { id: string; app: string; env: SealedVar[] | null }[];
    };
    if (rows.length === 0) return moved;
    await knex.transaction(async (trx) => {
      for (const row of rows) {
        const vars = Array.isArray(row.env) ? row.env : [];
        const hash = hashOf(vars);
        await trx.raw(`insert into env_versions (app_id, hash, vars) values (?, ?, ?::jsonb) on conflict (app_id, hash) do nothing`, [
          row.app,
          hash,
          JSON.stringify(vars),
        ]);
        await trx.raw(
          `update deployments set config_snapshot = (config_snapshot - 'env') || jsonb_build_object('envVersionId', (select id::text from env_versions where app_id = ? and hash = ?)) where id = ?`,
          [row.app, hash, row.id],
        );
      }
    });
    moved += rows.length;
  }
}
