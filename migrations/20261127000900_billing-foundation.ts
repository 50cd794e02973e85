import type { Knex } from 'knex';

// What a team's billing state needs beyond plan and the Stripe ids (000100): when it fell past
// due (new deploys are refused after a grace period), the owner's monthly overage cap, and the
// in-app notifications that quota and spend alerts (and other events) leave for a team's people.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('teams', (t) => {
    t.timestamp('past_due_since', { useTz: true });
    // Cents per calendar month of overage; null: no cap.
    t.integer('spend_cap_cents');
  });
  await knex.raw('alter table teams add constraint teams_spend_cap_check check (spend_cap_cents is null or spend_cap_cents >= 0)');

  await knex.schema.createTable('notifications', (t) => {
    t.bigIncrements('id');
    t.uuid('team_id').notNullable().references('teams.id').onDelete('CASCADE');
    // Whose it is: null means every member of the team whose role is at least min_role.
    t.uuid('user_id').references('users.id').onDelete('CASCADE');
    t.text('min_role').notNullable().defaultTo('member');
    t.text('kind').notNullable();
    t.text('title').notNullable();
    t.text('body').notNullable().defaultTo('');
    t.jsonb('data').notNullable().defaultTo('{}');
    // Makes a notification that must exist once (an alert per period) idempotent.
    t.text('dedupe_key');
    t.timestamp('read_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['team_id', 'id']);
    t.unique(['team_id', 'dedupe_key']);
  });
  await knex.raw(`alter table notifications add constraint notifications_min_role_check check (min_role in ('member','admin','owner'))`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('notifications');
  await knex.raw('alter table teams drop constraint teams_spend_cap_check');
  await knex.schema.alterTable('teams', (t) => {
    t.dropColumn('past_due_since');
    t.dropColumn('spend_cap_cents');
  });
}
