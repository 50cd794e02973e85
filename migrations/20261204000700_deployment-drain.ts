import type { Knex } from 'knex';

// What a release's drain did to the old machines' WebSocket clients (backend/lib/drain-summary.ts):
// connections drained, reconnected, reconnect times, and where the figures come from. Null for a
// release that replaced nothing, and for deployments made before this was measured.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('deployments', (t) => {
    t.jsonb('drain');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('deployments', (t) => {
    t.dropColumn('drain');
  });
}
