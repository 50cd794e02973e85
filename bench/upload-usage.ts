// `npm run bench:upload-usage`: one day's upload-usage for 10,000 teams × 3 meters (30,000 meter
// events) against the fake Stripe (test/support/fake-stripe.ts) answering each meter event after
// 100 ms and refusing a second concurrent call for one customer and meter with a 429. Goal: under
// 5 minutes. Prints the time to close the day (sum into the ledger) and to send, the events/s, and
// the 429s (which would mean the one-call-per-customer-and-meter rule was broken). Exits 0 whatever
// the figures. Settings: BENCH_TEAMS (10000), BENCH_LATENCY_MS (100), BENCH_CONCURRENCY (the
// job's default), BENCH_DATABASE_URL.
import { benchEnvironment } from './env.ts';

benchEnvironment('bench-upload-usage', 13);

const { pino } = await import('pino');
const { prepareDatabase } = await import('../backend/cli/migrate.ts');
const { getConfig } = await import('../backend/config.ts');
const { db, closeDb } = await import('../backend/db.ts');
const { stripeClient } = await import('../backend/billing/stripe.ts');
const { closeDays, sendPending, DEFAULT_CONCURRENCY } = await import('../backend/billing/upload-usage.ts');
const { METER_NAMES } = await import('../backend/billing/plans.ts');
const { FakeStripe } = await import('../test/support/fake-stripe.ts');

const TEAMS = Number(process.env.BENCH_TEAMS) || 10_000;
const LATENCY_MS = Number(process.env.BENCH_LATENCY_MS ?? 100);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY) || DEFAULT_CONCURRENCY;
const GOAL_MS = 5 * 60_000;
const DAY = 86_400_000;

const config = getConfig();
await prepareDatabase(config.databaseUrl, () => undefined);
const knex = db();
await knex.raw('truncate teams, usage_records, stripe_usage_uploads, usage_upload_days restart identity cascade');

// Two days ago is closed whatever the time of day; `now` is the next day at 02:00 UTC.
const todayStart = Math.floor(Date.now() / DAY) * DAY;
const billedDay = todayStart - 2 * DAY;
const now = new Date(billedDay + DAY + 2 * 3600_000);

console.log(`seeding ${TEAMS} teams with usage on ${new Date(billedDay).toISOString().slice(0, 10)}…`);
const BATCH = 2000;
for (let i = 0; i < TEAMS; i += BATCH) {
  const teams = Array.from({ length: Math.min(BATCH, TEAMS - i) }, (_, j) => ({
    slug: `bench-${i + j}`,
    name: `Bench ${i + j}`,
    plan: 'starter',
    stripeCustomerId: `cus_bench${i + j}`,
  }));
  const ids = (await knex('teams').insert(teams).returning('id')) as { id: string }[];
  const records = ids.flatMap(({ id }, j) =>
    METER_NAMES.map((meter) => ({
      teamId: id,
      meter,
      machineId: `bench-${i + j}`,
      windowStart: new Date(billedDay + 3600_000),
      windowEnd: new Date(billedDay + 3600_000 + 300_000),
      quantity: meter === 'bandwidth' ? 5_000_000 + j : 100 + j,
    })),
  );
  await knex('usageRecords').insert(records);
}

const fake = await new FakeStripe({ meterEventLatencyMs: LATENCY_MS }).start();
const stripe = stripeClient({ stripe: fake.stripeConfig })!;
const log = pino({ level: 'silent' });

const started = performance.now();
const { closed } = await closeDays(knex, now, log);
const closedMs = performance.now() - started;
const result = await sendPending(knex, stripe, { log, now, concurrency: CONCURRENCY });
const totalMs = performance.now() - started;
const sendMs = totalMs - closedMs;

const expected = TEAMS * METER_NAMES.length;
console.log(`closed ${closed.length} days in ${(closedMs / 1000).toFixed(1)} s`);
console.log(
  `sent ${result.sent} of ${expected} meter events in ${(sendMs / 1000).toFixed(1)} s (${Math.round(result.sent / (sendMs / 1000))}/s, ${CONCURRENCY} lanes at once, ${LATENCY_MS} ms per call)`,
);
console.log(
  `fake Stripe: ${fake.meterEvents.size} events accepted, ${fake.stats.rateLimited} 429s, ${fake.stats.duplicateIdentifiers} duplicate identifiers, at most ${fake.stats.maxInFlight} calls in flight`,
);
console.log(`failed ${result.failed}, left pending ${result.pending}`);
const ok = totalMs < GOAL_MS && fake.meterEvents.size === expected && fake.stats.rateLimited === 0;
console.log(`total ${(totalMs / 1000).toFixed(1)} s: goal (all ${expected} events, no 429, under 5 min) ${ok ? 'met' : 'NOT met'}`);

await fake.close();
await closeDb();
