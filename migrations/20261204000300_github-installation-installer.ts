import type { Knex } from 'knex';

// Who installed an installation, from GitHub's installation.created webhook (its `sender`; for an
// approved request, the owner who approved it, never the `requester`). An installation whose webhook
// arrived before anyone connected it may be connected by that person even when they are not an
// owner of the organization (a repository admin the organization lets install Apps).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('github_installations', (t) => {
    t.bigInteger('installer_github_id');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('github_installations', (t) => {
    t.dropColumn('installer_github_id');
  });
}
