// `npm run bench:api`: how fast is an authenticated read compared with Koa serving the same bytes?
//
// Seeds its own database (rhone_bench) and Redis database (10) with a user, a team and 50 apps,
// starts the real Rhone api (twice: read caches on, and off), a bare Koa serving the same body
// with the same headers, and a bare Koa hello world, each in its own child process (so none
// shares an event loop with the load generator), then runs autocannon at 50 connections against
//   (1) GET /api/teams/bench-team/apps, authenticated with the session cookie from POST /auth/dev
//   (2) the same page with the read caches off (every request runs its queries)
//   (3) GET / on the same-body Koa: the cost of writing ~30 KB of JSON, without Rhone
//   (4) GET / on the hello world
// and prints the rates, both ratios, p99 latencies and whether the goals are met: ratio to the
// same-body baseline >= 0.8 and Rhone p99 < 50 ms (the hello-world ratio is shown, not judged:
// it mixes Rhone's cost with the cost of writing 30 KB). Neither side gzips (autocannon asks for none). A run with errors, timeouts, non-2xx responses or a body
// other than the checked 50-app page is reported as invalid. On Linux it also prints the CPU time
// each request cost the server process and Postgres (from /proc), which stays meaningful when other
// work on the machine drags the rates down. It is a benchmark, not a test: it exits 0 whatever the
// figures (1 only if it could not run at all).
//
// Knobs (environment): BENCH_DURATION (s, default 10), BENCH_WARMUP (s, default 2),
// BENCH_CONNECTIONS (default 50), BENCH_LOG_LEVEL (the api's LOG_LEVEL, default silent),
// BENCH_SERVER_NODE_ARGS (extra node flags for the Rhone child, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p"),
// BENCH_DATABASE_URL, BENCH_REDIS_URL.
import { fork, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { benchEnvironment, stopChild } from './env.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const num = (name: string, fallback: number) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
const DURATION = num('BENCH_DURATION', 10);
const WARMUP = num('BENCH_WARMUP', 2);
const CONNECTIONS = num('BENCH_CONNECTIONS', 50);
const APPS = 50;
const LOGIN = 'bench-user';
const TEAM = 'bench-team';
const GOAL_RATIO = 0.8;
const GOAL_P99_MS = 50;

// The configuration is parsed on first use, so all of this is set before any backend module loads;
// the children inherit it.
const dataDir = benchEnvironment('bench', 10);

// ---- child processes, always cleaned up ----

const children = new Set<ChildProcess>();

function killChildren(signal: NodeJS.Signals): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  }
}

process.on('exit', () => {
  killChildren('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killChildren('SIGTERM');
    process.exit(130);
  });
}

/** Forks a server script under tsx and waits for the port it reports over IPC. */
async function startChild(
  script: string,
  nodeArgs: string[] = [],
  options: { env?: NodeJS.ProcessEnv; message?: unknown } = {},
): Promise<{ child: ChildProcess; url: string }> {
  const child = fork(path.join(here, script), [], {
    execArgv: ['--import', 'tsx', ...nodeArgs],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    env: options.env ?? process.env,
  });
  if (options.message !== undefined) child.send(options.message as object);
  children.add(child);
  child.on('exit', () => children.delete(child));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not report a port within 30 s`)), 30_000);
    child.once('message', (m) => {
      clearTimeout(timer);
      resolve((m as { port: number }).port);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited before listening (${signal ?? `exit ${code}`})`));
    });
  });
  return { child, url: `http://127.0.0.1:${port}` };
}

// ---- database and fixtures ----

async function seed(): Promise<void> {
  const { getConfig } = await import('../backend/config.ts');
  const { prepareDatabase } = await import('../backend/cli/migrate.ts');
  const { closeDb, db } = await import('../backend/db.ts');
  const { closeRedis, redis } = await import('../backend/redis.ts');
  const { makeApp, makeTeam, makeUser } = await import('../test/factories.ts');

  await prepareDatabase(getConfig().databaseUrl, () => undefined);
  const rows = (await db()
    .select('tablename')
    .from('pg_tables')
    .where({ schemaname: 'public' })
    .whereNotIn('tablename', ['knex_migrations', 'knex_migrations_lock'])) as { tablename: string }[];
  await db().raw(`truncate ${rows.map((r) => `"${r.tablename}"`).join(', ')} restart identity cascade`);
  await redis().flushdb();

  const user = await makeUser(LOGIN);
  const team = await makeTeam(user, TEAM);
  for (let i = 1; i <= APPS; i++) await makeApp(user, team, `bench-app-${String(i).padStart(2, '0')}`);
  await db().raw('analyze');
  await Promise.all([closeDb(), closeRedis()]);
}

/** Signs in through the real dev-login route; returns the Cookie header to send. */
async function sessionCookie(base: string): Promise<string> {
  const res = await fetch(`${base}/auth/dev`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ login: LOGIN }),
  });
  if (res.status !== 200) throw new Error(`POST /auth/dev answered ${res.status}: ${await res.text()}`);
  const session = res.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .find((c) => c.startsWith('rhone_session='));
  if (!session) throw new Error('POST /auth/dev set no rhone_session cookie');
  return session;
}

/** One request by hand: the page must be a 200 with all 50 apps. Returns the exact body to expect. */
async function checkRhone(url: string, headers: Record<string, string>): Promise<{ text: string; headers: Record<string, string> }> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  // What the same-body baseline sends too; what Node's HTTP server sets itself is left to it.
  const sent = Object.fromEntries(
    [...res.headers].filter(([name]) => !['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding', 'set-cookie'].includes(name)),
  );
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${text}`);
  const body = JSON.parse(text) as { items?: { team?: string }[]; next?: unknown };
  if (body.items?.length !== APPS || body.next !== null || body.items.some((a) => a.team !== TEAM)) {
    throw new Error(`GET ${url} did not return the ${APPS} apps of ${TEAM}: ${text.slice(0, 300)}`);
  }
  if (res.headers.get('content-encoding')) throw new Error(`GET ${url} came ${res.headers.get('content-encoding')}-encoded; the baselines are not`);
  return { text, headers: sent };
}

// ---- CPU accounting (Linux /proc; skipped elsewhere) ----

// CPU time is a steadier figure than wall-clock rates on a shared machine: other processes slow
// the rates down but hardly change what one request costs.
const TICK_MS = 10; // USER_HZ is 100 on Linux

/** utime + stime in ms of one process, or of every local postgres backend serving our database. */
function cpuMs(pid: number | 'postgres'): number | null {
  const read = (p: string) => {
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  };
  try {
    if (pid !== 'postgres') return read(String(pid));
    const db = new URL(process.env.DATABASE_URL!).pathname.slice(1);
    let total = 0;
    let found = false;
    for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      try {
        const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
        if (cmd.startsWith('postgres') && cmd.includes(` ${db} `)) {
          total += read(p);
          found = true;
        }
      } catch {
        // gone, or not ours to read
      }
    }
    return found ? total : null;
  } catch {
    return null;
  }
}

// ---- load ----

interface Figures {
  reqPerSec: number;
  p99: number;
  p50: number;
  total: number;
  problems: string[];
  /** CPU ms per response: the server process, and Postgres (local backends of rhone_bench). */
  serverCpuMs: number | null;
  postgresCpuMs: number | null;
}

async function load(url: string, headers: Record<string, string>, expectBody: string, serverPid: number): Promise<Figures> {
  const opts = { url, headers, connections: CONNECTIONS, expectBody, timeout: 10 };
  await autocannon({ ...opts, duration: WARMUP });
  const before = [cpuMs(serverPid), cpuMs('postgres')];
  const r = await autocannon({ ...opts, duration: DURATION });
  const after = [cpuMs(serverPid), cpuMs('postgres')];
  const responses = r['2xx'] + r.non2xx;
  const perResponse = (i: number) => {
    const [a, b] = [before[i], after[i]];
    return a !== null && b !== null && responses > 0 ? (b - a) / responses : null;
  };
  const problems: string[] = [];
  if (r.non2xx > 0) {
    const codes = Object.entries(r.statusCodeStats)
      .filter(([code]) => !code.startsWith('2'))
      .map(([code, s]) => `${s.count}×${code}`);
    problems.push(`${r.non2xx} non-2xx (${codes.join(', ')})`);
  }
  if (r.errors > 0) problems.push(`${r.errors} errors (${r.timeouts} timeouts)`);
  if (r.mismatches > 0) problems.push(`${r.mismatches} unexpected bodies`);
  if (r['2xx'] === 0) problems.push('no 2xx responses');
  return {
    reqPerSec: r.requests.average,
    p99: r.latency.p99,
    p50: r.latency.p50,
    total: r['2xx'],
    problems,
    serverCpuMs: perResponse(0),
    postgresCpuMs: perResponse(1),
  };
}

// ---- main ----

const round3 = (n: number | null) => (n === null ? null : Math.round(n * 1000) / 1000);
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

async function main(): Promise<void> {
  await seed();

  const serverArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const [rhone, uncached, hello] = await Promise.all([
    startChild('api-server.ts', serverArgs),
    startChild('api-server.ts', serverArgs, { env: { ...process.env, BENCH_UNCACHED: '1' } }),
    startChild('hello-server.ts'),
  ]);

  const cookie = await sessionCookie(rhone.url);
  const rhoneUrl = `${rhone.url}/api/teams/${TEAM}/apps`;
  const uncachedUrl = `${uncached.url}/api/teams/${TEAM}/apps`;
  const rhoneHeaders = { cookie, accept: 'application/json' };
  const page = await checkRhone(rhoneUrl, rhoneHeaders);
  const rhoneBody = page.text;
  if ((await checkRhone(uncachedUrl, rhoneHeaders)).text !== rhoneBody) throw new Error('the uncached api answered another page than the cached one');
  const same = await startChild('same-body-server.ts', [], { message: { body: rhoneBody, headers: page.headers } });
  const helloBody = await (await fetch(`${hello.url}/`)).text();

  const loadavg = () =>
    os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
  console.log(
    `Rhone API benchmark: ${CONNECTIONS} connections, ${WARMUP} s warm-up + ${DURATION} s per target, ` +
      `${os.cpus().length} CPUs, Node ${process.version}, api LOG_LEVEL=${process.env.LOG_LEVEL}, load average ${loadavg()} at start`,
  );
  if (os.loadavg()[0] > 0.5 * os.cpus().length) {
    console.log('  (the machine is busy with something else: the rates will be low and noisy; the CPU per request is steadier)');
  }
  const r = await load(rhoneUrl, rhoneHeaders, rhoneBody, rhone.child.pid!);
  const u = await load(uncachedUrl, rhoneHeaders, rhoneBody, uncached.child.pid!);
  const s = await load(`${same.url}/`, { accept: 'application/json' }, rhoneBody, same.child.pid!);
  const b = await load(`${hello.url}/`, {}, helloBody, hello.child.pid!);
  await Promise.all([stopChild(rhone.child), stopChild(uncached.child), stopChild(same.child), stopChild(hello.child)]);

  const cpu = (f: Figures) =>
    f.serverCpuMs === null
      ? ''
      : `   CPU/request: server ${fmt(f.serverCpuMs, 3)} ms${f.postgresCpuMs === null ? '' : `, postgres ${fmt(f.postgresCpuMs, 3)} ms`}`;
  const line = (label: string, f: Figures) =>
    `  ${label}${fmt(f.reqPerSec).padStart(8)} req/s   p50 ${fmt(f.p50, 1).padStart(6)} ms   p99 ${fmt(f.p99, 1).padStart(6)} ms${cpu(f)}   ` +
    `(${fmt(f.total)} ok responses${f.problems.length ? `; INVALID: ${f.problems.join('; ')}` : ''})`;
  const kb = fmt(Buffer.byteLength(rhoneBody) / 1024, 1);
  console.log(line(`rhone      GET /api/teams/${TEAM}/apps (${APPS} apps, ${kb} KB, session cookie)`.padEnd(76), r));
  console.log(line(`uncached   the same, read caches off (every request queries Postgres)`.padEnd(76), u));
  console.log(line(`same body  GET / (bare Koa, the same ${kb} KB and headers)`.padEnd(76), s));
  console.log(line(`hello      GET / (bare Koa hello world)`.padEnd(76), b));

  const valid = [r, u, s, b].every((f) => f.problems.length === 0);
  const ratio = r.reqPerSec / s.reqPerSec;
  const helloRatio = r.reqPerSec / b.reqPerSec;
  const uncachedRatio = u.reqPerSec / s.reqPerSec;
  const verdict = (ok: boolean) => (valid ? (ok ? 'met' : 'NOT met') : 'not evaluated: the run had errors');
  console.log(`  ratio rhone/same body: ${fmt(ratio, 3)}   goal >= ${GOAL_RATIO}: ${verdict(ratio >= GOAL_RATIO)}`);
  console.log(`  ratio uncached/same body: ${fmt(uncachedRatio, 3)}   (what the queries cost without the read cache; not a goal)`);
  console.log(`  ratio rhone/hello world: ${fmt(helloRatio, 3)}   (mixes Rhone's cost with writing ${kb} KB; not a goal)`);
  console.log(`  rhone p99: ${fmt(r.p99, 1)} ms   goal < ${GOAL_P99_MS} ms at ${CONNECTIONS} connections: ${verdict(r.p99 < GOAL_P99_MS)}`);
  console.log(`  load average ${loadavg()} at end`);
  const summary = (f: Figures) => ({
    reqPerSec: f.reqPerSec,
    p50Ms: f.p50,
    p99Ms: f.p99,
    serverCpuMsPerRequest: round3(f.serverCpuMs),
    postgresCpuMsPerRequest: round3(f.postgresCpuMs),
    problems: f.problems,
  });
  console.log(
    JSON.stringify({
      connections: CONNECTIONS,
      durationS: DURATION,
      valid,
      rhone: summary(r),
      uncached: summary(u),
      sameBody: summary(s),
      hello: summary(b),
      ratio: Math.round(ratio * 1000) / 1000,
      uncachedRatio: Math.round(uncachedRatio * 1000) / 1000,
      helloRatio: Math.round(helloRatio * 1000) / 1000,
      goals: valid ? { ratio: ratio >= GOAL_RATIO, p99: r.p99 < GOAL_P99_MS } : null,
    }),
  );
}

try {
  await main();
  process.exit(0);
} catch (err) {
  console.error(`bench:api could not run: ${(err as Error).stack ?? err}`);
  process.exit(1);
}
