import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('github_installations', (t) => {
    // GitHub's own installation id: stable and what webhooks name.
    t.bigInteger('id').primary();
    t.uuid('team_id').references('teams.id').onDelete('SET NULL');
    t.text('account_login').notNullable();
    t.text('account_type').notNullable();
    t.text('repository_selection');
    t.timestamp('suspended_at', { useTz: true });
    t.timestamp('deleted_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['team_id']);
  });

  await knex.schema.createTable('github_installation_repositories', (t) => {
    t.bigInteger('installation_id').notNullable().references('github_installations.id').onDelete('CASCADE');
    t.bigInteger('repository_id').notNullable();
    t.text('full_name').notNullable();
    t.boolean('private').notNullable().defaultTo(false);
    t.text('default_branch');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['installation_id', 'repository_id']);
    t.index(['full_name']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('github_installation_repositories');
  await knex.schema.dropTable('github_installations');
}
