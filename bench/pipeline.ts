// `npm run bench:pipeline`: the deploy pipeline's own overhead, and many deploys at once.
//
//   overhead (default): 20 deploys of examples/hello-node, one after another, from POST
//     /api/apps/:app/deploy to "live", minus the app's own time: its build commands (hello-node
//     has none to run) and its boot until the health check passes, and the old release's drain.
//     Median and p95. Goal: overhead under 2 s.
//   concurrent (BENCH_MODE=concurrent): 100 distinct apps deployed at once on the local runtime;
//     all must end live, none stuck; prints the total time.
//
// Everything runs in this process on its own database (rhone_bench_pipeline) and Redis db 9: the
// real api, two sets of workers sharing the stages, and the local runtime. The app's part is read
// from the deployment's own log lines (their `at` timestamps). A benchmark, not a test: exits 0.
import { rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchEnvironment } from './env.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const MODE = process.env.BENCH_MODE === 'concurrent' ? 'concurrent' : 'overhead';
const RUNS = Number(process.env.BENCH_RUNS) || (MODE === 'concurrent' ? 100 : 20);
const dataDir = benchEnvironment('bench-pipeline', 9);

const { getConfig } = await import('../backend/config.ts');
const { prepareDatabase } = await import('../backend/cli/migrate.ts');
const { db, closeDb } = await import('../backend/db.ts');
const { redis, closeRedis } = await import('../backend/redis.ts');
const { createApp, closeApp } = await import('../backend/app.ts');
const { startLocalRuntime } = await import('../local/main.ts');
const { startWorkers } = await import('../jobs/worker.ts');
const { closeQueues } = await import('../jobs/queues.ts');
const { Deployment, DeploymentEvent } = await import('../backend/models/index.ts');
const { TestRepo } = await import('../test/support/git-repo.ts');
const { pino } = await import('pino');

await prepareDatabase(getConfig().databaseUrl, () => undefined);
const tables = (
  (await db().select('tablename').from('pg_tables').where({ schemaname: 'public' }).whereNotIn('tablename', ['knex_migrations', 'knex_migrations_lock'])) as {
    tablename: string;
  }[]
).map((r) => `"${r.tablename}"`);
await db().raw(`truncate ${tables.join(', ')} restart identity cascade`);
await redis().flushdb();

const local = await startLocalRuntime({ dataDir, machinesPort: 0, routerPort: 0 });
const config = { ...getConfig(), machinesPort: Number(new URL(local.machinesUrl).port), routerPort: Number(new URL(local.routerUrl).port) };
const log = pino({ level: 'silent' });
const queues = { connection: { url: config.redisUrl, maxRetriesPerRequest: null } };
const app = createApp({ config, knex: db(), redis: redis(), log, queues, rateLimits: { signInPerMinute: 1000, writesPerMinute: 100_000 } });
const server = app.listen(0, '127.0.0.1');
await new Promise((r) => server.once('listening', r));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const workers = [
  ...startWorkers({ ...queues, knex: db(), log, config, only: ['clone', 'analyze', 'build', 'deploy'] }),
  ...startWorkers({ ...queues, knex: db(), log, config, only: ['clone', 'analyze', 'build', 'deploy'] }),
];

// Sign in through the API and keep the cookies, as the dashboard does.
const login = await fetch(`${base}/auth/dev`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: 'bench' }) });
const cookies = login.headers.getSetCookie().map((c) => c.split(';')[0]);
const csrf = cookies.find((c) => c.startsWith('rhone_csrf='))!.split('=')[1];
const headers = { 'content-type': 'application/json', cookie: cookies.join('; '), 'x-csrf-token': csrf };
const api = async (method: string, p: string, body?: unknown) => {
  const res = await fetch(base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(json)}`);
  return json;
};

const repo = new TestRepo(path.join(here, '../examples/hello-node'));
repo.commit('hello');

async function until(id: string): Promise<number> {
  for (;;) {
    const d = await Deployment.query(db()).findById(id).throwIfNotFound();
    if (d.status === 'live') return performance.now();
    if (['failed', 'canceled', 'superseded'].includes(d.status)) throw new Error(`deployment ended ${d.status}: ${d.reason}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The app's own time, from the deployment's log lines: boot until healthy, and the old release's drain. */
async function appMs(id: string): Promise<number> {
  const lines = (await DeploymentEvent.query(db()).where({ deploymentId: id, type: 'log' }).orderBy('seq')).map((e) => e.data as { line: string; at: string });
  const at = (re: RegExp) => {
    const hit = [...lines].reverse().find((l) => re.test(l.line));
    return hit ? Date.parse(hit.at) : undefined;
  };
  const started = at(/started; waiting for GET/);
  const healthy = at(/is healthy$/);
  const stopping = at(/^Stopping \d+ old machine/);
  const stopped = at(/^Old machine .* stopped$/);
  let ms = started !== undefined && healthy !== undefined ? healthy - started : 0;
  if (stopping !== undefined && stopped !== undefined) ms += stopped - stopping;
  return ms;
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)];
const ms = (x: number) => `${Math.round(x)} ms`.padStart(10);

try {
  if (MODE === 'overhead') {
    await api('POST', '/api/teams/bench/apps', { name: 'Bench', slug: 'bench-app', source: { type: 'git', url: repo.url, branch: 'main' } });
    await until(((await api('POST', '/api/apps/bench-app/deploy', {})) as { id: string }).id); // warm-up: v1 serves
    const totals: number[] = [];
    const apps: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      const { id } = (await api('POST', '/api/apps/bench-app/deploy', {})) as { id: string };
      const t1 = await until(id);
      totals.push(t1 - t0);
      apps.push(await appMs(id));
    }
    const overhead = totals.map((t, i) => t - apps[i]);
    console.log(`deploy pipeline, local mode: ${RUNS} deploys of examples/hello-node, POST deploy → live, 2 workers`);
    console.log(`${'figure'.padEnd(36)}${'median'.padStart(10)}${'p95'.padStart(10)}`);
    console.log(`${'total, POST → live'.padEnd(36)}${ms(pct(totals, 50))}${ms(pct(totals, 95))}`);
    console.log(`${"app's boot + checks + old drain".padEnd(36)}${ms(pct(apps, 50))}${ms(pct(apps, 95))}`);
    console.log(`${'pipeline overhead'.padEnd(36)}${ms(pct(overhead, 50))}${ms(pct(overhead, 95))}`);
    console.log(`goal: overhead under 2000 ms at the median: ${pct(overhead, 50) < 2000 ? 'met' : 'NOT met'}`);
  } else {
    for (let i = 0; i < RUNS; i++) {
      await api('POST', '/api/teams/bench/apps', { name: `App ${i}`, slug: `app-${i}`, source: { type: 'git', url: repo.url, branch: 'main' } });
    }
    const t0 = performance.now();
    const ids = await Promise.all(Array.from({ length: RUNS }, async (_, i) => ((await api('POST', `/api/apps/app-${i}/deploy`, {})) as { id: string }).id));
    const results = await Promise.allSettled(ids.map((id) => until(id)));
    const total = performance.now() - t0;
    const failed = results.filter((r) => r.status === 'rejected');
    const statuses = await Deployment.query(db()).whereIn('id', ids).select('status');
    const byStatus = statuses.reduce<Record<string, number>>((acc, d) => ({ ...acc, [d.status]: (acc[d.status] ?? 0) + 1 }), {});
    console.log(`${RUNS} concurrent deployments of distinct apps on the local runtime, 2 workers`);
    console.log(
      `statuses: ${JSON.stringify(byStatus)}; not live: ${failed.length}${failed.length ? ` (first: ${(failed[0] as PromiseRejectedResult).reason})` : ''}`,
    );
    console.log(`total time, first POST → last live: ${(total / 1000).toFixed(1)} s`);
  }
} finally {
  await Promise.allSettled(workers.map((w) => w.close()));
  await new Promise((r) => server.close(r));
  await closeApp(app);
  await local.close();
  await Promise.allSettled([closeQueues(), closeRedis(), closeDb()]);
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(0);
}
