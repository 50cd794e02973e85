import type { Knex } from 'knex';

// The package versions Railpack resolved when it analyzed a deployment ({"go": "1.22.12"}, from
// railpack-info.json's resolvedPackages): the next analyze of the app passes those of its live
// deployment back as `railpack prepare --previous`, so versions do not float between builds.
// Null for local mode's detector and for deployments analyzed before this was kept.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('deployments', (t) => {
    t.jsonb('resolved_packages');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('deployments', (t) => {
    t.dropColumn('resolved_packages');
  });
}
