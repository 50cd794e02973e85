import type { Knex } from 'knex';

// What the Stripe half of billing keeps:
// - usage_upload_days: the UTC days whose usage has been closed into the ledger (once per day, for
//   every team at once), so a rerun never closes a day twice and catch-up knows which days it missed.
// - stripe_usage_uploads: the ledger, one row per (team, meter, UTC day): what was (or is to be) sent
//   to Stripe as one meter event with a deterministic identifier. The database, not Stripe (whose
//   identifier check lasts only ~24 h), is the long-term exactly-once guard.
// - teams.invoice_event_at: the `created` time of the latest invoice event applied (paid or failed),
//   so an older event that arrives late does not undo a newer one (Stripe does not order events).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('usage_upload_days', (t) => {
    t.date('day').primary();
    t.timestamp('closed_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('stripe_usage_uploads', (t) => {
    t.bigIncrements('id');
    t.uuid('team_id').notNullable().references('teams.id').onDelete('CASCADE');
    t.text('meter').notNullable();
    t.date('day').notNullable();
    t.text('customer_id').notNullable();
    t.text('event_name').notNullable();
    // The day's usage in record units (bytes for bandwidth), and what is sent in Stripe units.
    t.bigInteger('quantity').notNullable();
    t.bigInteger('value').notNullable();
    // Record units left over after converting to whole Stripe units, carried into the next day.
    t.bigInteger('carry').notNullable().defaultTo(0);
    t.text('identifier').notNullable().unique();
    t.text('status').notNullable().defaultTo('pending');
    t.integer('attempts').notNullable().defaultTo(0);
    t.text('last_error');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('sent_at', { useTz: true });
    t.unique(['team_id', 'meter', 'day']);
  });
  await knex.raw(`alter table stripe_usage_uploads add constraint stripe_usage_uploads_status_check
    check (status in ('pending','sent','failed','zero'))`);
  await knex.raw(`create index stripe_usage_uploads_pending_idx on stripe_usage_uploads (day) where status = 'pending'`);

  await knex.schema.alterTable('teams', (t) => {
    t.timestamp('invoice_event_at', { useTz: true });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('teams', (t) => {
    t.dropColumn('invoice_event_at');
  });
  await knex.schema.dropTable('stripe_usage_uploads');
  await knex.schema.dropTable('usage_upload_days');
}
