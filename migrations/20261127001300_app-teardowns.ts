import type { Knex } from 'knex';

// Deleting an app must also remove its Fly app (machines, secrets, certificates, IPs): the row is
// written in the same transaction as the app's deletion, and a job (or, if that enqueue was lost,
// the reaper) carries it out, so a crash between the two never leaves machines running for an app
// that no longer exists.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('app_teardowns', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('team_id').references('teams.id').onDelete('SET NULL');
    t.text('app_slug').notNullable();
    t.text('fly_app').notNullable();
    t.integer('sweeps').notNullable().defaultTo(0);
    t.text('last_error');
    t.timestamp('requested_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('done_at', { useTz: true });
  });
  await knex.raw('create index app_teardowns_pending_idx on app_teardowns (requested_at) where done_at is null');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('app_teardowns');
}
