import type { Knex } from 'knex';

// What the pipeline needs beyond the first deployments table: a cancel request the running worker
// sees, the current stage's job id (so the reaper and the reconciler can find it), and which
// worker holds it.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('deployments', (t) => {
    t.timestamp('cancel_requested_at', { useTz: true });
    t.uuid('cancel_requested_by').references('users.id').onDelete('SET NULL');
    t.text('job_id');
    t.integer('recoveries').notNullable().defaultTo(0);
  });
  // The reaper looks for active deployments by heartbeat.
  await knex.raw(`create index deployments_heartbeat_idx on deployments (heartbeat_at) where status in ('cloning','analyzing','building','deploying')`);
  // At most one deployment of an app may be in flight (past queued, not finished).
  await knex.raw(`create unique index deployments_one_in_flight on deployments (app_id) where status in ('cloning','analyzing','building','deploying')`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists deployments_one_in_flight');
  await knex.raw('drop index if exists deployments_heartbeat_idx');
  await knex.schema.alterTable('deployments', (t) => {
    t.dropColumn('recoveries');
    t.dropColumn('job_id');
    t.dropColumn('cancel_requested_by');
    t.dropColumn('cancel_requested_at');
  });
}
