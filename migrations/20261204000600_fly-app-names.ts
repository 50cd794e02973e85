import type { Knex } from 'knex';

// Fly app names are global across all of Fly: one derived from the slug alone can be taken by
// anyone (squatted) and, once an app is deleted, is recomputed for the next app of that slug. Each
// app keeps the name its Fly app was created under. Existing apps keep `rhone-{slug}`, the name
// their Fly apps already have; new ones get a random suffix (backend/providers/fly/names.ts).
// A teardown remembers which Rhone app it is for, so it can check the Fly app's mark (its network)
// before deleting it.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('apps', (t) => {
    t.text('fly_app_name');
  });
  await knex.raw(`update apps set fly_app_name = 'rhone-' || slug`);
  // A default for rows inserted without one (scripts); createApp always sets a readable name.
  await knex.raw(`alter table apps alter column fly_app_name set default ('rhone-app-' || substr(md5(gen_random_uuid()::text), 1, 16))`);
  await knex.raw('alter table apps alter column fly_app_name set not null');
  await knex.raw('alter table apps add constraint apps_fly_app_name_unique unique (fly_app_name)');
  await knex.schema.alterTable('app_teardowns', (t) => {
    t.uuid('app_id');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('app_teardowns', (t) => {
    t.dropColumn('app_id');
  });
  await knex.schema.alterTable('apps', (t) => {
    t.dropColumn('fly_app_name');
  });
}
