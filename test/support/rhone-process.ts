// The real `npm start` as a child process for end-to-end tests: its own database (created and
// migrated by npm start itself), Redis database, data directory and ports.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { getConfig } from '../../backend/config.ts';

// Every process a test starts talks to the Postgres server and the Redis server of the test
// settings (TEST_DATABASE_URL / TEST_REDIS_URL, see test/env.ts), never to a hard-coded one, so
// a developer's own Rhone or a second test run on the machine is never touched.

/** The test settings' database name; a test that needs its own database derives its name from it. */
export function testDatabaseName(): string {
  return new URL(getConfig().databaseUrl).pathname.slice(1);
}

/** The test settings' Postgres server, database `name`. */
export function testDatabaseUrl(name: string): string {
  const url = new URL(getConfig().databaseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * The test settings' Redis database, or with `offset` another database of the same server
 * (number + offset, modulo Redis's default 16) for processes that outlive one test: the root
 * hooks empty the test's own database before every test.
 */
export function testRedisUrl(offset = 0): string {
  const url = new URL(getConfig().redisUrl);
  if (offset === 0) return url.toString();
  const db = Number(url.pathname.slice(1) || '0');
  url.pathname = `/${(db + offset) % 16}`;
  return url.toString();
}

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function dropDatabase(name: string): Promise<void> {
  const client = new pg.Client({ connectionString: testDatabaseUrl('postgres') });
  await client.connect();
  await client.query(`drop database if exists "${name}" with (force)`);
  await client.end();
}

export async function flushRedis(url: string): Promise<void> {
  const r = new Redis(url);
  await r.flushdb();
  r.disconnect();
}

export function npmStart(env: Record<string, string>, options: { detached?: boolean } = {}) {
  const child = spawn('npm', ['start'], {
    cwd: path.resolve(import.meta.dirname, '../..'),
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  const out = { text: '' };
  child.stdout!.on('data', (d) => (out.text += d));
  child.stderr!.on('data', (d) => (out.text += d));
  const exited = new Promise<string>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? `exit ${code}`)));
  return { child, out, exited };
}

export interface RunningRhone {
  url: string;
  port: number;
  routerPort: number;
  machinesPort: number;
  child: ChildProcess;
  out: { text: string };
  exited: Promise<string>;
  /** What Ctrl-C does: SIGINT to the whole process group; resolves when npm start has ended. */
  stop(): Promise<string>;
}

/** Starts `npm start` in local mode and waits for the URL it prints. */
export async function startRhone({
  dbName,
  redisUrl = testRedisUrl(),
  timeoutMs = 90_000,
}: {
  dbName: string;
  redisUrl?: string;
  timeoutMs?: number;
}): Promise<RunningRhone> {
  const [port, routerPort, machinesPort] = [await freePort(), await freePort(), await freePort()];
  const { child, out, exited } = npmStart(
    {
      PORT: String(port),
      RHONE_ROUTER_PORT: String(routerPort),
      RHONE_MACHINES_PORT: String(machinesPort),
      DATABASE_URL: testDatabaseUrl(dbName),
      REDIS_URL: redisUrl,
      RHONE_DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'rhone-start-')),
      LOG_LEVEL: 'warn',
    },
    { detached: true },
  );
  const stop = async () => {
    try {
      process.kill(-child.pid!, 'SIGINT');
    } catch {
      // already gone
    }
    return exited;
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL printed within ${timeoutMs / 1000} s:\n${out.text}`)), timeoutMs);
      const check = () => {
        const m = /Rhone is running in local mode at (http:\/\/[^\s;]+)/.exec(out.text);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      };
      child.stdout!.on('data', check);
      void exited.then((how) => reject(new Error(`npm start ended (${how}) before printing the URL:\n${out.text}`)));
    });
    return { url, port, routerPort, machinesPort, child, out, exited, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
