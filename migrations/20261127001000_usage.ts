import type { Knex } from 'knex';

// Metering's own state. usage_poll_state: how far poll-usage has counted machine time, per Fly org.
// A poll first fixes the end of its window (pending_to) and only then counts, so a retried or
// overlapping poll counts the same window (the usage_records unique index drops the repeats) and a
// missed poll leaves a longer window, never a hole. usage_bandwidth_counters: the last reading of a
// cumulative bytes-out counter per Fly app (the local router's), so each poll records the increase.
// usage_period_totals: each team's running total per meter per billing period, added to in the same
// statement that inserts usage_records (only rows actually inserted count), so limits and alerts
// read one row instead of summing a month of five-minute records.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('usage_poll_state', (t) => {
    t.text('org').primary();
    t.timestamp('polled_through', { useTz: true }).notNullable();
    t.timestamp('pending_to', { useTz: true });
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.schema.createTable('usage_bandwidth_counters', (t) => {
    t.text('fly_app').primary();
    t.bigInteger('bytes_out').notNullable();
    t.timestamp('read_at', { useTz: true }).notNullable();
  });
  await knex.schema.createTable('usage_period_totals', (t) => {
    t.uuid('team_id').notNullable().references('teams.id').onDelete('CASCADE');
    t.text('meter').notNullable();
    // The first day of the calendar month (UTC) the usage falls in.
    t.date('period').notNullable();
    t.bigInteger('quantity').notNullable();
    t.primary(['team_id', 'meter', 'period']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('usage_period_totals');
  await knex.schema.dropTable('usage_bandwidth_counters');
  await knex.schema.dropTable('usage_poll_state');
}
