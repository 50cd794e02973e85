import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('apps', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('team_id').notNullable().references('teams.id').onDelete('RESTRICT');
    t.text('name').notNullable();
    t.text('slug').notNullable().unique();
    t.jsonb('source').notNullable();
    t.text('root_directory').notNullable().defaultTo('');
    t.text('build_command');
    t.text('start_command');
    t.text('region').notNullable();
    t.text('machine_size').notNullable();
    t.integer('internal_port').notNullable().defaultTo(8080);
    t.text('health_check_path').notNullable().defaultTo('/health');
    t.integer('instance_count').notNullable().defaultTo(1);
    t.boolean('auto_deploy').notNullable().defaultTo(true);
    t.uuid('created_by').references('users.id').onDelete('SET NULL');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['team_id', 'slug']);
  });
  // Push webhooks look apps up by repository and branch.
  await knex.raw(`create index apps_github_repo_idx on apps ((source->>'repo'), (source->>'branch')) where source->>'type' = 'github'`);

  await knex.schema.createTable('env_vars', (t) => {
    t.uuid('app_id').notNullable().references('apps.id').onDelete('CASCADE');
    t.text('name').notNullable();
    t.text('key_id').notNullable();
    // iv | auth tag | ciphertext; never plaintext.
    t.binary('ciphertext').notNullable();
    t.uuid('updated_by').references('users.id').onDelete('SET NULL');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['app_id', 'name']);
    t.index(['key_id']);
  });

  await knex.schema.createTable('domains', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('app_id').notNullable().references('apps.id').onDelete('CASCADE');
    // Stored as punycode, lowercase.
    t.text('hostname').notNullable().unique();
    t.text('status').notNullable().defaultTo('pending');
    t.jsonb('certificate');
    t.jsonb('dns_requirements');
    t.text('last_error');
    t.timestamp('next_check_at', { useTz: true });
    t.timestamp('active_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['app_id']);
  });
  await knex.raw(`create index domains_pending_idx on domains (next_check_at) where status <> 'active'`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('domains');
  await knex.schema.dropTable('env_vars');
  await knex.schema.dropTable('apps');
}
