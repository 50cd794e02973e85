import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { Model, knexSnakeCaseMappers } from 'objection';
import { getConfig } from './config.ts';

// bigint counts come back as strings by default; ours fit in a JS number.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

const migrationsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../migrations');

/** Lists migrations explicitly so knex never has to guess how to load TypeScript under ESM. */
class MigrationSource implements Knex.MigrationSource<string> {
  async getMigrations(): Promise<string[]> {
    return readdirSync(migrationsDir)
      .filter((f) => /^\d{14}_.+\.ts$/.test(f))
      .sort();
  }
  getMigrationName(file: string): string {
    return file;
  }
  async getMigration(file: string): Promise<Knex.Migration> {
    return import(pathToFileURL(path.join(migrationsDir, file)).href) as Promise<Knex.Migration>;
  }
}

export function createKnex(databaseUrl: string, pool = { min: 0, max: 10 }): Knex {
  return knexFactory({
    client: 'pg',
    connection: databaseUrl,
    pool,
    // camelCase in code, snake_case in the database, for models and plain knex queries alike.
    ...knexSnakeCaseMappers(),
    migrations: { migrationSource: new MigrationSource(), tableName: 'knex_migrations' },
  });
}

let shared: Knex | undefined;

/** The process's knex, bound to Objection on first use. */
export function db(): Knex {
  if (!shared) {
    shared = createKnex(getConfig().databaseUrl);
    Model.knex(shared);
  }
  return shared;
}

export async function closeDb(): Promise<void> {
  if (shared) await shared.destroy();
  shared = undefined;
}

/** Creates the database named in the URL if it does not exist (connecting to "postgres"). */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`database name "${name}" must be letters, digits, _ or -`);
  url.pathname = '/postgres';
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (found.rowCount) return false;
    try {
      await client.query(`create database "${name}"`);
    } catch (err) {
      // Another process created it first.
      if ((err as { code?: string }).code !== '42P04') throw err;
      return false;
    }
    return true;
  } finally {
    await client.end();
  }
}

export async function migrateLatest(knex: Knex): Promise<string[]> {
  const [, applied] = (await knex.migrate.latest()) as [number, string[]];
  return applied;
}
