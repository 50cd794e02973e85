import type { Knex } from 'knex';

// Custom domains (docs/domains.md): the statuses the dashboard shows, and what the certificate checker
// needs to back off and to give up: when checking (re)started, how many checks it has made, when
// Let's Encrypt lets Fly try again, and when the last check ran.
const DOMAIN_STATUSES = ['pending_dns', 'pending_validation', 'active', 'failed'];

export async function up(knex: Knex): Promise<void> {
  await knex('domains').where({ status: 'pending' }).update({ status: 'pending_dns' });
  await knex.schema.alterTable('domains', (t) => {
    t.text('status').notNullable().defaultTo('pending_dns').alter();
    t.timestamp('checks_started_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.integer('check_attempts').notNullable().defaultTo(0);
    t.timestamp('rate_limited_until', { useTz: true });
    t.timestamp('last_checked_at', { useTz: true });
  });
  await knex.raw(`alter table domains add constraint domains_status_check check (status in (${DOMAIN_STATUSES.map((s) => `'${s}'`).join(',')}))`);
  // The checker looks only at domains still waiting for their certificate.
  await knex.raw('drop index if exists domains_pending_idx');
  await knex.raw(`create index domains_pending_idx on domains (next_check_at) where status in ('pending_dns', 'pending_validation')`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists domains_pending_idx');
  await knex.raw(`create index domains_pending_idx on domains (next_check_at) where status <> 'active'`);
  await knex.raw('alter table domains drop constraint domains_status_check');
  await knex.schema.alterTable('domains', (t) => {
    t.dropColumn('checks_started_at');
    t.dropColumn('check_attempts');
    t.dropColumn('rate_limited_until');
    t.dropColumn('last_checked_at');
    t.text('status').notNullable().defaultTo('pending').alter();
  });
  await knex('domains').whereIn('status', ['pending_dns', 'pending_validation', 'failed']).update({ status: 'pending' });
}
