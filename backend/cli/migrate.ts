// `npm run migrate`: create the database if missing and apply every pending migration.
import { configOrExit } from '../config.ts';
import { createKnex, ensureDatabase, migrateLatest } from '../db.ts';
import { preflight } from '../lib/preflight.ts';

export async function prepareDatabase(databaseUrl: string, log: (line: string) => void = console.log): Promise<void> {
  if (await ensureDatabase(databaseUrl)) log(`rhone: created database ${new URL(databaseUrl).pathname.slice(1)}`);
  const knex = createKnex(databaseUrl, { min: 0, max: 1 });
  try {
    const applied = await migrateLatest(knex);
    if (applied.length > 0) log(`rhone: applied ${applied.length} migration${applied.length === 1 ? '' : 's'}: ${applied.join(', ')}`);
  } finally {
    await knex.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const config = configOrExit();
  const problem = await preflight(config, { redis: false });
  if (problem) {
    console.error(problem);
    process.exit(1);
  }
  await prepareDatabase(config.databaseUrl);
  console.log('rhone: database is up to date');
}
