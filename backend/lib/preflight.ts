// Before anything starts: can we reach Postgres and Redis? If not, one message that says which,
// which setting points at it, and how to start it.
import pg from 'pg';
import { Redis } from 'ioredis';
import type { Config } from '../config.ts';

function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '(unparseable URL)';
  }
}

async function checkPostgres(databaseUrl: string): Promise<string | null> {
  const url = new URL(databaseUrl);
  url.pathname = '/postgres'; // the database itself may not exist yet; we create it next
  const client = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('select 1');
    return null;
  } catch (err) {
    return (err as Error).message || String(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function checkRedis(redisUrl: string): Promise<string | null> {
  const client = new Redis(redisUrl, { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
    return null;
  } catch (err) {
    return (err as Error).message || String(err);
  } finally {
    client.disconnect();
  }
}

/** Checks Postgres, and Redis unless told not to (migrations need only Postgres). */
export async function preflight(config: Config, { redis = true } = {}): Promise<string | null> {
  const [pgError, redisError] = await Promise.all([checkPostgres(config.databaseUrl), redis ? checkRedis(config.redisUrl) : null]);
  if (!pgError && !redisError) return null;
  const lines = [`Rhone needs PostgreSQL${redis ? ' and Redis' : ''}, and could not reach:`];
  if (pgError) lines.push(`  - PostgreSQL at DATABASE_URL=${redactUrl(config.databaseUrl)} (${pgError})`);
  if (redisError) lines.push(`  - Redis at REDIS_URL=${redactUrl(config.redisUrl)} (${redisError})`);
  lines.push(
    '',
    'Start them with Docker:   docker compose up -d',
    'or with Debian packages:  sudo apt-get install postgresql redis-server',
    '                          sudo pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start',
    '                          redis-server --daemonize yes',
    'or point DATABASE_URL / REDIS_URL at servers you already run, then run the command again.',
  );
  return lines.join('\n');
}
