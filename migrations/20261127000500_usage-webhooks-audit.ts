import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('usage_records', (t) => {
    t.bigIncrements('id');
    t.uuid('team_id').notNullable().references('teams.id').onDelete('CASCADE');
    t.uuid('app_id').references('apps.id').onDelete('SET NULL');
    t.text('machine_id');
    t.text('meter').notNullable();
    t.text('guest_size');
    t.text('region');
    t.timestamp('window_start', { useTz: true }).notNullable();
    t.timestamp('window_end', { useTz: true }).notNullable();
    t.bigInteger('quantity').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['team_id', 'meter', 'window_start']);
  });
  // Idempotent per machine (or app, for bandwidth; or deployment, for builds) and window.
  await knex.raw(`create unique index usage_records_window_unique on usage_records
    (meter, coalesce(machine_id, ''), coalesce(app_id::text, ''), window_start)`);

  await knex.schema.createTable('webhook_deliveries', (t) => {
    t.bigIncrements('id');
    t.text('provider').notNullable();
    t.text('delivery_id').notNullable();
    t.text('event').notNullable();
    t.text('action');
    t.timestamp('received_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('processed_at', { useTz: true });
    t.text('error');
    t.unique(['provider', 'delivery_id']);
    t.index(['received_at']);
  });

  await knex.schema.createTable('audit_events', (t) => {
    t.bigIncrements('id');
    t.uuid('team_id').notNullable().references('teams.id').onDelete('CASCADE');
    t.uuid('actor_id').references('users.id').onDelete('SET NULL');
    t.text('actor_login');
    t.text('action').notNullable();
    t.text('subject_type').notNullable();
    t.text('subject_id');
    t.jsonb('data').notNullable().defaultTo('{}');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['team_id', 'id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('audit_events');
  await knex.schema.dropTable('webhook_deliveries');
  await knex.schema.dropTable('usage_records');
}
