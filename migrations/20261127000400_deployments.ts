import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('deployments', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('app_id').notNullable().references('apps.id').onDelete('CASCADE');
    t.integer('number').notNullable();
    t.text('status').notNullable().defaultTo('queued');
    t.text('stage');
    t.text('ref');
    t.text('commit_sha');
    t.text('commit_message');
    t.text('trigger').notNullable();
    t.uuid('triggered_by').references('users.id').onDelete('SET NULL');
    t.uuid('rollback_of').references('deployments.id').onDelete('SET NULL');
    // Settings and encrypted env vars as they were when the deploy was asked for.
    t.jsonb('config_snapshot').notNullable();
    t.jsonb('plan');
    t.text('image');
    t.text('reason');
    t.jsonb('stage_timings').notNullable().defaultTo('{}');
    t.integer('last_seq').notNullable().defaultTo(0);
    t.timestamp('heartbeat_at', { useTz: true });
    t.timestamp('started_at', { useTz: true });
    t.timestamp('finished_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['app_id', 'number']);
    t.index(['app_id', 'created_at']);
  });
  await knex.raw(`alter table deployments add constraint deployments_status_check check (status in
    ('queued','cloning','analyzing','building','deploying','live','failed','canceled','superseded','replaced','skipped'))`);
  // The reconciler and the reaper look for deployments that are not finished.
  await knex.raw(`create index deployments_active_idx on deployments (app_id) where status in ('queued','cloning','analyzing','building','deploying')`);
  // A push deploys a SHA at most once per app.
  await knex.raw(`create unique index deployments_push_once on deployments (app_id, commit_sha) where trigger = 'push'`);

  await knex.schema.createTable('deployment_events', (t) => {
    t.uuid('deployment_id').notNullable().references('deployments.id').onDelete('CASCADE');
    t.integer('seq').notNullable();
    t.text('type').notNullable();
    t.jsonb('data').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['deployment_id', 'seq']);
  });
  await knex.raw(`alter table deployment_events add constraint deployment_events_type_check check (type in ('status','log'))`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('deployment_events');
  await knex.schema.dropTable('deployments');
}
