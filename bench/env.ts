// Every benchmark runs Rhone in local mode on a database, Redis database and data directory of
// its own. Call this before any backend module is imported (the configuration is parsed on first
// use); child processes inherit it. BENCH_DATABASE_URL, BENCH_REDIS_URL and BENCH_LOG_LEVEL win.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function benchEnvironment(name: string, redisDb: number): string {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `rhone-${name}-`));
  Object.assign(process.env, {
    RHONE_MODE: 'local',
    DATABASE_URL: process.env.BENCH_DATABASE_URL ?? `postgres://postgres@127.0.0.1:5432/rhone_${name.replace(/-/g, '_')}`,
    REDIS_URL: process.env.BENCH_REDIS_URL ?? `redis://127.0.0.1:6379/${redisDb}`,
    RHONE_DATA_DIR: dataDir,
    RHONE_SESSION_SECRET: 'bench-session-secret-that-is-long-enough-0123456789',
    RHONE_ENCRYPTION_KEYS: `b1:${Buffer.alloc(32, 9).toString('base64')}`,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'silent',
    PORT: '0',
  });
  return dataDir;
}

/** SIGTERM, then SIGKILL after 10 s; resolves once the child has exited. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(force);
}
