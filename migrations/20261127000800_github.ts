import type { Knex } from 'knex';

// What the GitHub integration keeps beyond the first tables:
// - apps.source_problem: why an app's GitHub source cannot be reached (the App was uninstalled or
//   suspended, or the repository was taken out of the installation). Its page says so, and pushes
//   stop deploying it until the source is back.
// - webhook_deliveries.payload: the delivery as received, for the job that processes it.
// - deployments.github_status: the commit status state last posted for the deployment's commit,
//   so a retried or late report never posts the same state twice, nor an older one over a newer.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('apps', (t) => {
    t.text('source_problem');
  });
  await knex.raw(`alter table apps add constraint apps_source_problem_check check (source_problem in
    ('installation_deleted','installation_suspended','repository_removed'))`);
  // Installation webhooks look up the apps of an installation.
  await knex.raw(`create index apps_github_installation_idx on apps (((source->>'installationId')::bigint)) where source->>'type' = 'github'`);

  await knex.schema.alterTable('webhook_deliveries', (t) => {
    t.jsonb('payload');
  });
  // The sweeper looks for deliveries that were stored but never processed.
  await knex.raw('create index webhook_deliveries_unprocessed_idx on webhook_deliveries (received_at) where processed_at is null');

  await knex.schema.alterTable('deployments', (t) => {
    t.text('github_status');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('deployments', (t) => {
    t.dropColumn('github_status');
  });
  await knex.raw('drop index if exists webhook_deliveries_unprocessed_idx');
  await knex.schema.alterTable('webhook_deliveries', (t) => {
    t.dropColumn('payload');
  });
  await knex.raw('drop index if exists apps_github_installation_idx');
  await knex.raw('alter table apps drop constraint if exists apps_source_problem_check');
  await knex.schema.alterTable('apps', (t) => {
    t.dropColumn('source_problem');
  });
}
