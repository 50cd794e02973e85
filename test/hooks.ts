// Root hooks: migrate the test database once; before each test, empty every table and the test
// Redis database, so each test starts from nothing.
import { getConfig } from '../backend/config.ts';
import { closeDb, db } from '../backend/db.ts';
import { closeRedis, redis } from '../backend/redis.ts';
import { prepareDatabase } from '../backend/cli/migrate.ts';
import { closeQueues } from '../jobs/queues.ts';

let tables: string[] = [];

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(60_000);
    await prepareDatabase(getConfig().databaseUrl, () => undefined);
    const rows = await db()
      .select('tablename')
      .from('pg_tables')
      .where({ schemaname: 'public' })
      .whereNotIn('tablename', ['knex_migrations', 'knex_migrations_lock']);
    tables = rows.map((r: { tablename: string }) => r.tablename);
  },
  async beforeEach() {
    await db().raw(`truncate ${tables.map((t) => `"${t}"`).join(', ')} restart identity cascade`);
    await redis().flushdb();
  },
  async afterAll() {
    await closeQueues();
    await closeRedis();
    await closeDb();
  },
};
