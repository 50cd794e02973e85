// `npm run bench:sse`: live deployment logs fanned out to many watchers.
//
// Seeds its own database (rhone_bench_sse, created and migrated if missing, emptied first) and
// Redis database 11 with a user, a team, an app and one running deployment. Starts the real api
// in a child process (bench/api-server.ts) and the clients in other children (bench/sse-clients.ts:
// raw sockets, one request each, no keep-alive), so neither shares an event loop with the other or
// with the writer. Once all BENCH_CLIENTS (1,000) streams of GET /api/deployments/:id/events are open, this
// process plays the worker: it appends BENCH_RATE (2,000) log lines/s for BENCH_DURATION (10) s
// through appendEvents, one batch every BENCH_BATCH_MS (50) ms, each line stamped with the time it
// was handed to appendEvents. Then a terminal status ends every stream.
//
// Prints the median, p99 and max delivery lag (stamp → read by a client; so it includes the
// insert, the commit, Redis, the api's fan-out and the client's own delay), the worst lag per
// second (a stall and a slow drift look different), the CPU each party used, whether every client
// got every event without a gap and the end event, and the api process's peak RSS (VmHWM from
// /proc). Goals: p99 < 250 ms, RSS < 300 MB. Everything shares the machine's CPUs with Postgres and
// Redis, so run it on an otherwise idle machine. It exits 0 whatever the figures (1 only if it
// could not run at all).
//
// Knobs (environment): BENCH_CLIENTS, BENCH_RATE, BENCH_DURATION, BENCH_BATCH_MS,
// BENCH_CLIENT_PROCS (default 2), BENCH_LINE_BYTES (default 100), BENCH_DATABASE_URL, BENCH_REDIS_URL,
// BENCH_SERVER_NODE_ARGS / BENCH_CLIENT_NODE_ARGS (extra node flags, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p").
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClientsJob, ClientsResult } from './sse-clients.ts';
import { benchEnvironment, stopChild } from './env.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const num = (name: string, fallback: number) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
const CLIENTS = num('BENCH_CLIENTS', 1000);
const RATE = num('BENCH_RATE', 2000);
const DURATION = num('BENCH_DURATION', 10);
const BATCH_MS = num('BENCH_BATCH_MS', 50);
const CLIENT_PROCS = num('BENCH_CLIENT_PROCS', 2);
const LINE_BYTES = num('BENCH_LINE_BYTES', 100);
const LOGIN = 'bench-sse';
const GOAL_P99_MS = 250;
const GOAL_RSS_MB = 300;

// Set before any backend module parses the configuration; the children inherit it.
const dataDir = benchEnvironment('bench-sse', 11);

const { getConfig } = await import('../backend/config.ts');
const { prepareDatabase } = await import('../backend/cli/migrate.ts');
const { closeDb, db } = await import('../backend/db.ts');
const { closeRedis, redis } = await import('../backend/redis.ts');
const { appendEvents } = await import('../backend/deployments/events.ts');
const { makeApp, makeTeam, makeUser } = await import('../test/factories.ts');

// ---- child processes, always cleaned up ----

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

function forkChild(script: string, nodeArgs: string[] = []): ChildProcess {
  const child = fork(path.join(here, script), [], { execArgv: ['--import', 'tsx', ...nodeArgs], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

const words = (s: string | undefined) => (s ?? '').split(/\s+/).filter(Boolean);

function nextMessage<T>(child: ChildProcess, key: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${key}" from a child within ${timeoutMs / 1000} s`)), timeoutMs);
    const onMessage = (m: unknown) => {
      if (!m || typeof m !== 'object' || !(key in m)) return;
      clearTimeout(timer);
      child.off('message', onMessage);
      resolve((m as Record<string, T>)[key]);
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`a child exited (${code}) before sending "${key}"`)));
  });
}

// ---- fixtures ----

async function seed(): Promise<string> {
  await prepareDatabase(getConfig().databaseUrl, () => undefined);
  const rows = (await db()
    .select('tablename')
    .from('pg_tables')
    .where({ schemaname: 'public' })
    .whereNotIn('tablename', ['knex_migrations', 'knex_migrations_lock'])) as { tablename: string }[];
  await db().raw(`truncate ${rows.map((r) => `"${r.tablename}"`).join(', ')} restart identity cascade`);
  await redis().flushdb();
  const user = await makeUser(LOGIN);
  const team = await makeTeam(user, 'bench-sse-team');
  const app = await makeApp(user, team, 'bench-sse-app');
  const [row] = await db()('deployments')
    .insert({ appId: app.id, number: 1, trigger: 'manual', configSnapshot: '{}', status: 'building', stage: 'build' })
    .returning('id');
  const id = (row as { id: string }).id;
  await appendEvents(db(), id, [{ type: 'status', data: { status: 'building', stage: 'build' } }]);
  return id;
}

async function sessionCookie(base: string): Promise<string> {
  const res = await fetch(`${base}/auth/dev`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: LOGIN }) });
  if (res.status !== 200) throw new Error(`POST /auth/dev answered ${res.status}: ${await res.text()}`);
  const session = res.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .find((c) => c.startsWith('rhone_session='));
  if (!session) throw new Error('POST /auth/dev set no rhone_session cookie');
  return session;
}

// ---- /proc ----

function procStatusKb(pid: number, field: string): number | null {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

function cpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}

// ---- the worker ----

/** Appends RATE lines/s in batches every BATCH_MS, on a fixed schedule (a slow batch is caught up, not skipped). */
async function write(deploymentId: string): Promise<{ lines: number; batches: number; slowestAppendMs: number }> {
  const perBatch = Math.max(1, Math.round((RATE * BATCH_MS) / 1000));
  const batches = Math.round((DURATION * 1000) / BATCH_MS);
  const padding = 'x'.repeat(Math.max(0, LINE_BYTES - 32));
  const start = performance.now();
  let lines = 0;
  let slowest = 0;
  for (let b = 0; b < batches; b++) {
    const due = start + b * BATCH_MS;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const stamp = Math.round((performance.timeOrigin + performance.now()) * 10);
    const at = new Date().toISOString();
    const events = Array.from({ length: perBatch }, (_, i) => ({
      type: 'log' as const,
      data: { stage: 'build', stream: 'stdout' as const, line: `t=${stamp} n=${lines + i} ${padding}`, at },
    }));
    const t0 = performance.now();
    await appendEvents(db(), deploymentId, events);
    slowest = Math.max(slowest, performance.now() - t0);
    lines += perBatch;
  }
  return { lines, batches, slowestAppendMs: slowest };
}

// ---- figures ----

function percentile(histogram: number[], p: number): number {
  const total = histogram.reduce((a, b) => a + b, 0);
  const rank = Math.ceil(total * p);
  let seen = 0;
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i];
    if (seen >= rank) return i / 10;
  }
  return NaN;
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

async function main(): Promise<void> {
  const deploymentId = await seed();
  const api = forkChild('api-server.ts', words(process.env.BENCH_SERVER_NODE_ARGS));
  const port = await nextMessage<number>(api, 'port', 30_000);
  const base = `http://127.0.0.1:${port}`;
  const cookie = await sessionCookie(base);
  const apiPid = api.pid!;
  const rssBeforeKb = procStatusKb(apiPid, 'VmRSS');

  console.log(
    `SSE fan-out benchmark: ${fmt(CLIENTS)} clients in ${CLIENT_PROCS} processes, ${fmt(RATE)} lines/s for ${DURATION} s ` +
      `in batches every ${BATCH_MS} ms, ~${LINE_BYTES}-byte lines, ${os.cpus().length} CPUs, Node ${process.version}, load average ${os.loadavg()[0].toFixed(2)}`,
  );

  const url = `${base}/api/deployments/${deploymentId}/events`;
  const procs = Array.from({ length: CLIENT_PROCS }, () => forkChild('sse-clients.ts', words(process.env.BENCH_CLIENT_NODE_ARGS)));
  const connectStart = performance.now();
  const results = procs.map((p) => nextMessage<ClientsResult>(p, 'result', (DURATION + 120) * 1000));
  // Awaited later; marked handled now so a child dying early fails the run instead of crashing it.
  results.forEach((r) => r.catch(() => undefined));
  const connected = procs.map((p) => nextMessage<boolean>(p, 'connected', 60_000));
  procs.forEach((p, i) => {
    const job: ClientsJob = { url, cookie, count: Math.floor(CLIENTS / CLIENT_PROCS) + (i < CLIENTS % CLIENT_PROCS ? 1 : 0) };
    p.send(job);
  });
  // A client process that ends before every stream is open sends its result: say why.
  const failedEarly = Promise.race(results).then((r) => {
    throw new Error(`clients ended before all streams were open: ${r.failures.length} failures (${[...new Set(r.failures)].slice(0, 5).join('; ')})`);
  });
  await Promise.race([Promise.all(connected), failedEarly]);
  const connectMs = performance.now() - connectStart;
  const rssConnectedKb = procStatusKb(apiPid, 'VmRSS');
  console.log(
    `  ${fmt(CLIENTS)} streams open in ${fmt(connectMs)} ms; api RSS ${fmt((rssBeforeKb ?? 0) / 1024)} MB before, ${fmt((rssConnectedKb ?? 0) / 1024)} MB with the streams open`,
  );

  const cpuBefore = cpuMs(apiPid);
  const clientCpuBefore = procs.map((p) => cpuMs(p.pid!) ?? 0);
  const selfCpuBefore = process.cpuUsage();
  const wrote = await write(deploymentId);
  const cpuAfter = cpuMs(apiPid);
  const clientCpu = procs.reduce((sum, p, i) => sum + ((cpuMs(p.pid!) ?? 0) - clientCpuBefore[i]), 0) / (DURATION * 1000);
  const selfCpu = process.cpuUsage(selfCpuBefore);
  const writerCpu = (selfCpu.user + selfCpu.system) / 1000 / (DURATION * 1000);
  await db().transaction(async (trx) => {
    await trx('deployments').where({ id: deploymentId }).update({ status: 'live', finishedAt: new Date() });
    await appendEvents(trx, deploymentId, [{ type: 'status', data: { status: 'live', stage: 'deploy' } }]);
  });
  const all = await Promise.all(results);
  const peakKb = procStatusKb(apiPid, 'VmHWM');
  await stopChild(api);

  const histogram = all.reduce<number[]>((sum, r) => sum.map((v, i) => v + r.histogram[i]), new Array(all[0].histogram.length).fill(0));
  const samples = histogram.reduce((a, b) => a + b, 0);
  const p50 = percentile(histogram, 0.5);
  const p99 = percentile(histogram, 0.99);
  const max = percentile(histogram, 1);
  // Seq 1 is the first status, then the lines, then the terminal status.
  const lastSeq = wrote.lines + 2;
  const minLast = Math.min(...all.map((r) => r.lastIdPerClient.min));
  const maxLast = Math.max(...all.map((r) => r.lastIdPerClient.max));
  const ended = all.reduce((n, r) => n + r.endedCleanly, 0);
  const failures = all.flatMap((r) => r.failures);
  const problems: string[] = [];
  if (minLast !== lastSeq || maxLast !== lastSeq) problems.push(`clients stopped at event ids ${minLast}–${maxLast} of ${lastSeq}`);
  if (ended !== CLIENTS) problems.push(`${CLIENTS - ended} streams ended without "event: end"`);
  if (failures.length) problems.push(`${failures.length} client errors (${[...new Set(failures)].slice(0, 3).join('; ')})`);
  const valid = problems.length === 0;
  const peakMb = (peakKb ?? NaN) / 1024;
  const apiCpu = cpuBefore !== null && cpuAfter !== null ? (cpuAfter - cpuBefore) / (DURATION * 1000) : null;
  const verdict = (ok: boolean) => (valid ? (ok ? 'met' : 'NOT met') : 'not evaluated: the run was incomplete');

  console.log(
    `  wrote ${fmt(wrote.lines)} lines in ${fmt(wrote.batches)} batches (slowest appendEvents ${fmt(wrote.slowestAppendMs, 1)} ms); ` +
      `${fmt(samples)} deliveries measured`,
  );
  console.log(
    `  CPU while writing, in % of a core: api ${apiCpu === null ? '?' : fmt(apiCpu * 100)}, clients ${fmt(clientCpu * 100)}, writer ${fmt(writerCpu * 100)}; ` +
      `load average ${os.loadavg()[0].toFixed(2)} (other work on the machine inflates the lag)`,
  );
  console.log(
    `  delivery lag: median ${fmt(p50, 1)} ms   p99 ${fmt(p99, 1)} ms   max ${fmt(max, 1)} ms   goal p99 < ${GOAL_P99_MS} ms: ${verdict(p99 < GOAL_P99_MS)}`,
  );
  const worst = new Map<number, number>();
  for (const [second, lag] of all.flatMap((r) => r.worstBySecond)) worst.set(second, Math.max(lag, worst.get(second) ?? 0));
  const timeline = [...worst].sort((x, y) => x[0] - y[0]).map(([, lag]) => fmt(lag / 10));
  console.log(`  worst lag of the lines sent in each second of the run, ms: ${timeline.join(' ')}`);
  console.log(`  api peak RSS (VmHWM): ${fmt(peakMb, 1)} MB   goal < ${GOAL_RSS_MB} MB: ${verdict(peakMb < GOAL_RSS_MB)}`);
  console.log(valid ? `  every client got all ${fmt(lastSeq)} events, ids without a gap, and the end event` : `  INVALID: ${problems.join('; ')}`);
  console.log(
    JSON.stringify({
      clients: CLIENTS,
      linesPerSecond: RATE,
      durationS: DURATION,
      batchMs: BATCH_MS,
      valid,
      problems,
      lagMs: { p50, p99, max },
      apiPeakRssMb: Math.round(peakMb * 10) / 10,
      apiCpuCores: apiCpu === null ? null : Math.round(apiCpu * 100) / 100,
      goals: valid ? { p99: p99 < GOAL_P99_MS, rss: peakMb < GOAL_RSS_MB } : null,
    }),
  );
}

try {
  await main();
  await Promise.allSettled([closeDb(), closeRedis()]);
  process.exit(0);
} catch (err) {
  console.error(`bench:sse could not run: ${(err as Error).stack ?? err}`);
  process.exit(1);
}
