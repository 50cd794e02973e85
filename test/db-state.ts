// Whole-database views for tests that must prove a request wrote nothing, or that a secret
// never reached any table.
import { db } from '../backend/db.ts';

async function tableNames(): Promise<string[]> {
  const rows = await db()
    .select('tablename')
    .from('pg_tables')
    .where({ schemaname: 'public' })
    .whereNotIn('tablename', ['knex_migrations', 'knex_migrations_lock'])
    .orderBy('tablename');
  return rows.map((r: { tablename: string }) => r.tablename);
}

/** Every public table's row count and a digest of its contents: any insert, update or delete changes it. */
export async function dbFingerprint(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of await tableNames()) {
    const { rows } = await db().raw(`select count(*)::int as n, md5(coalesce(string_agg(t::text, '|' order by t::text), '')) as digest from "${table}" t`);
    out[table] = `${rows[0].n}:${rows[0].digest}`;
  }
  return out;
}

/** Every row of every table as text (bytea shows as \x hex), for scanning for plaintext. */
export async function dumpDatabase(): Promise<string> {
  const parts: string[] = [];
  for (const table of await tableNames()) {
    const { rows } = await db().raw(`select t::text as row from "${table}" t`);
    parts.push(...rows.map((r: { row: string }) => `${table}: ${r.row}`));
  }
  return parts.join('\n');
}
