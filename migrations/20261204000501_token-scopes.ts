import type { Knex } from 'knex';

// API tokens get a scope: read < deploy < admin (backend/policies/tokens.ts). One column, not a
// list, because each scope includes the ones below it. Tokens made before scopes existed could do
// everything their user's role allowed, so they become `admin` (the scope matching that power; no
// token, whatever its scope, may create, list or revoke tokens any more). New tokens default to
// `deploy`, what a CLI needs for `rhone up`.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('api_tokens', (t) => {
    t.text('scope').notNullable().defaultTo('admin');
  });
  await knex.raw(`alter table api_tokens alter column scope set default 'deploy'`);
  await knex.raw(`alter table api_tokens add constraint api_tokens_scope_check check (scope in ('read', 'deploy', 'admin'))`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('api_tokens', (t) => {
    t.dropColumn('scope');
  });
}
