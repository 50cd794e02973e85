// poll-usage at scale: 50,000 apps (60,000 machines) behind a simulated Fly API that enforces Fly's
// published rate limit (1 req/s, burst 3, per action and org or machine; 429 beyond) and answers
// every request after 30 ms. Prints the poll's total time, the floor the rate limit sets (the org
// listing's pages are sequential: each cursor comes from the previous page, and all share one
// bucket), the floor the latency sets, and how long Postgres spent on the poll's queries.
//
//   npm run bench:poll-usage        (BENCH_APPS, BENCH_CHANGED_PERCENT to vary)

import { benchEnvironment } from './env.ts';

benchEnvironment('bench-poll-usage', 13);
const { getConfig } = await import('../backend/config.ts');
const { prepareDatabase } = await import('../backend/cli/migrate.ts');
const { db, closeDb } = await import('../backend/db.ts');
const { closeRedis } = await import('../backend/redis.ts');
const { FlyClient } = await import('../backend/providers/fly/client.ts');
const { pollUsage } = await import('../backend/billing/metering.ts');
const { startFakeFlyMachines } = await import('../test/support/fake-fly-machines.ts');
const { pino } = await import('pino');

const APPS = Number(process.env.BENCH_APPS ?? 50_000);
const SECOND_MACHINE_EVERY = 5; // every 5th app has two machines: 60,000 machines for 50,000 apps
const CHANGED_PERCENT = Number(process.env.BENCH_CHANGED_PERCENT ?? 5);
const LATENCY_MS = 30;
const PAGE = 1000;
const RATE = { perSecond: 1, burst: 3 };
const T0 = Date.UTC(2026, 10, 20, 12);
const WINDOW_MS = 5 * 60_000;

await prepareDatabase(getConfig().databaseUrl, () => undefined);
const knex = db();
await knex.raw('truncate users, teams, usage_records, usage_poll_state, usage_period_totals, usage_bandwidth_counters restart identity cascade');

// ---- seed: one user, a team per 5 apps, 50,000 apps ------------------------------------------
const seedStart = Date.now();
const [{ id: userId }] = (await knex('users').insert({ login: 'bench', githubId: null }).returning('id')) as { id: string }[];
const teamIds: string[] = [];
for (let i = 0; i < Math.ceil(APPS / 5); i += 5000) {
  const rows = Array.from({ length: Math.min(5000, Math.ceil(APPS / 5) - i) }, (_, k) => ({ slug: `t${i + k}`, name: `t${i + k}`, plan: 'pro' }));
  teamIds.push(...((await knex('teams').insert(rows).returning('id')) as { id: string }[]).map((r) => r.id));
}
const apps: { id: string; slug: string }[] = [];
for (let i = 0; i < APPS; i += 5000) {
  const rows = Array.from({ length: Math.min(5000, APPS - i) }, (_, k) => ({
    teamId: teamIds[Math.floor((i + k) / 5)],
    name: `a${i + k}`,
    slug: `a${i + k}`,
    createdBy: userId,
    region: 'iad',
    machineSize: 'shared-cpu-1x',
    source: JSON.stringify({ type: 'git', url: 'https://example.com/x.git', branch: 'main' }),
  }));
  apps.push(...((await knex('apps').insert(rows).returning(['id', 'slug'])) as { id: string; slug: string }[]));
}

const fly = await startFakeFlyMachines({ latencyMs: LATENCY_MS, rateLimit: true });
let expectedSeconds = 0;
let machines = 0;
const started = (id: string, appId: string, slug: string) => {
  machines++;
  const changed = (machines * 7919) % 100 < CHANGED_PERCENT;
  if (!changed) {
    fly.add({
      id,
      app: `rhone-${slug}`,
      rhoneApp: appId,
      events: [
        [T0 - 3600_000, 'launch', 'created'],
        [T0 - 3599_000, 'start', 'started'],
      ],
    });
    expectedSeconds += WINDOW_MS / 1000;
    return;
  }
  // Changed during the window: stopped at +60 s, started again at +120 s (240 s started of 300).
  fly.add({
    id,
    app: `rhone-${slug}`,
    rhoneApp: appId,
    events: [
      [T0 - 3600_000, 'launch', 'created'],
      [T0 - 3599_000, 'start', 'started'],
      [T0 + 60_000, 'exit', 'stopped'],
      [T0 + 120_000, 'start', 'started'],
    ],
  });
  expectedSeconds += 240;
};
apps.forEach((a, i) => {
  started(`m${i}a`, a.id, a.slug);
  if (i % SECOND_MACHINE_EVERY === 0) started(`m${i}b`, a.id, a.slug);
});
const seedMs = Date.now() - seedStart;

// ---- Postgres time: every query's duration, summed ---------------------------------------------
const inFlight = new Map<string, number>();
let dbMs = 0;
let queries = 0;
knex.on('query', (q: { __knexQueryUid: string }) => inFlight.set(q.__knexQueryUid, performance.now()));
knex.on('query-response', (_r: unknown, q: { __knexQueryUid: string }) => {
  const t = inFlight.get(q.__knexQueryUid);
  if (t !== undefined) {
    dbMs += performance.now() - t;
    queries++;
    inFlight.delete(q.__knexQueryUid);
  }
});

let retries = 0;
const client = new FlyClient({ baseUrl: fly.url, token: 'bench', onRetry: () => void retries++ });
const log = pino({ level: 'silent' });
const poll = (at: number) => pollUsage({ knex, client, org: 'bench', log, now: () => new Date(at), pageSize: PAGE });
await poll(T0); // sets where counting starts
dbMs = 0;
queries = 0;
const t = performance.now();
const result = await poll(T0 + WINDOW_MS);
const totalMs = performance.now() - t;

const recorded = Number((await knex('usageRecords').where({ meter: 'machine_seconds' }).sum({ s: 'quantity' }))[0].s);
const pages = result.pages;
const rateFloorMs = (Math.max(0, pages - RATE.burst) / RATE.perSecond) * 1000 + LATENCY_MS;
const latencyFloorMs = pages * LATENCY_MS;
const floorMs = Math.max(rateFloorMs, latencyFloorMs);
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
console.log(`poll-usage: ${APPS} apps, ${machines} machines (${CHANGED_PERCENT}% changed during the window), seeded in ${s(seedMs)}`);
console.log(
  `  simulated Fly: ${LATENCY_MS} ms per request, ${RATE.perSecond} req/s burst ${RATE.burst} per action and org/machine; 429s answered: ${fly.requests.rejected429} (client retries: ${retries})`,
);
console.log(`  pages: ${pages} of ${PAGE}; event lookups: ${result.eventLookups}; records: ${result.records}`);
console.log(`  total: ${s(totalMs)} (listing ${s(result.listingMs)}, then ${s(totalMs - result.listingMs)} to finish counting, record and check alerts)`);
console.log(`  floor set by the rate limit: ${s(rateFloorMs)} ((${pages} pages - burst ${RATE.burst}) / ${RATE.perSecond} req/s + one latency)`);
console.log(`  floor set by latency alone:  ${s(latencyFloorMs)} (${pages} sequential pages x ${LATENCY_MS} ms)`);
console.log(`  total / floor: ${(totalMs / floorMs).toFixed(3)} (goal: within 10%, <= 1.100)`);
console.log(`  Postgres: ${s(dbMs)} summed over ${queries} queries (${((dbMs / totalMs) * 100).toFixed(1)}% of the wall time; they overlap the listing)`);
console.log(`  machine seconds recorded: ${recorded}, expected ${expectedSeconds}: ${recorded === expectedSeconds ? 'exact' : 'MISMATCH'}`);

await fly.close();
await closeDb();
await closeRedis();
