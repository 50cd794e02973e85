// upload-usage against the fake Stripe through stripe-node: one meter event per (team, meter, UTC
// day), exactly once across reruns and a SIGKILL mid-upload, catch-up of missed days, 429 backoff,
// "identifier already exists" counted as sent, local mode, and the daily schedule (controlled clock).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Job } from 'bullmq';
import { pino } from 'pino';
import { db } from '../backend/db.ts';
import { getConfig } from '../backend/config.ts';
import { Team } from '../backend/models/index.ts';
import { stripeClient } from '../backend/billing/stripe.ts';
import { identifierOf, uploadUsage, type UploadOptions } from '../backend/billing/upload-usage.ts';
import type { Meter } from '../backend/billing/plans.ts';
import { queue } from '../jobs/queues.ts';
import { registerSchedules } from '../jobs/schedules.ts';
import { startWorkers } from '../jobs/worker.ts';
import { makeTeam, makeUser } from './factories.ts';
import { FakeStripe } from './support/fake-stripe.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const silent = pino({ level: 'silent' });
const todayStart = Math.floor(Date.now() / DAY) * DAY;
/** The UTC day `n` days before today, as YYYY-MM-DD. */
const day = (n: number) => new Date(todayStart - n * DAY).toISOString().slice(0, 10);
/** 02:00 UTC, `n` days ago: yesterday has ended and settled. */
const at = (n = 0) => new Date(todayStart - n * DAY + 2 * HOUR);

let recordSeq = 0;
/** A usage record of `quantity` for the team in the UTC day `n` days ago (at `hour`). */
async function usage(teamId: string, meter: Meter, n: number, quantity: number, hour = 10) {
  recordSeq += 1;
  const start = new Date(todayStart - n * DAY + hour * HOUR);
  await db()('usageRecords').insert({
    teamId,
    meter,
    machineId: `m-${recordSeq}`,
    windowStart: start,
    windowEnd: new Date(start.getTime() + 300_000),
    quantity,
  });
}

async function customerTeam(slug: string, customer: string | null = `cus_${slug}`) {
  const team = await makeTeam(await makeUser(`${slug}-owner`), slug);
  await Team.query(db()).patch({ stripeCustomerId: customer }).where({ id: team.id });
  return team;
}

const ledger = () => db()('stripeUsageUploads').orderBy(['teamId', 'meter', 'day']).select('meter', db().raw('day::text as day'), 'value', 'carry', 'status');

describe('upload-usage', function () {
  this.timeout(60_000);
  let fake: FakeStripe;
  const upload = (options: Partial<UploadOptions> = {}) =>
    uploadUsage(db(), stripeClient({ stripe: fake.stripeConfig }), { log: silent, now: at(), backoffMs: () => 5, ...options });

  beforeEach(async () => {
    fake = await new FakeStripe().start();
  });
  afterEach(async () => {
    await fake.close();
  });

  it('sends one event per team, meter and day, whole MB with the remainder carried, and nothing again on a rerun', async () => {
    const acme = await customerTeam('acme');
    const nobill = await customerTeam('nobill', null);
    await usage(acme.id, 'machine_seconds', 1, 1800, 0);
    await usage(acme.id, 'machine_seconds', 1, 1800, 23);
    await usage(acme.id, 'machine_seconds', 0, 999); // today: not over yet
    await usage(acme.id, 'bandwidth', 2, 700_000);
    await usage(acme.id, 'bandwidth', 1, 1_500_000);
    await usage(acme.id, 'builds', 1, 2);
    await usage(nobill.id, 'builds', 1, 5); // no Stripe customer: nothing to send

    const result = await upload();
    assert.equal(result.closedDays.length, 33);
    assert.equal(result.closedDays.at(-1), day(1));
    assert.deepEqual([result.sent, result.failed, result.pending], [3, 0, 0]);
    const events = [...fake.meterEvents.values()].sort((a, b) => a.identifier.localeCompare(b.identifier));
    const endOfYesterday = (todayStart - 1000) / 1000;
    assert.deepEqual(events, [
      // 0.7 MB two days ago sent nothing; with 1.5 MB yesterday, 2 MB go and 0.2 MB wait.
      { identifier: identifierOf(acme.id, 'bandwidth', day(1)), eventName: 'rhone_bandwidth_mb', customer: 'cus_acme', value: 2, timestamp: endOfYesterday },
      { identifier: identifierOf(acme.id, 'builds', day(1)), eventName: 'rhone_builds', customer: 'cus_acme', value: 2, timestamp: endOfYesterday },
      {
        identifier: identifierOf(acme.id, 'machine_seconds', day(1)),
        eventName: 'rhone_machine_seconds',
        customer: 'cus_acme',
        value: 3600,
        timestamp: endOfYesterday,
      },
    ]);
    assert.equal(identifierOf(acme.id, 'bandwidth', day(1)), `rhone:${acme.id}:bandwidth:${day(1)}`);
    assert.deepEqual(await ledger(), [
      { meter: 'bandwidth', day: day(2), value: 0, carry: 700000, status: 'zero' },
      { meter: 'bandwidth', day: day(1), value: 2, carry: 200000, status: 'sent' },
      { meter: 'builds', day: day(1), value: 2, carry: 0, status: 'sent' },
      { meter: 'machine_seconds', day: day(1), value: 3600, carry: 0, status: 'sent' },
    ]);

    const calls = fake.stats.meterEventCalls;
    const rerun = await upload({ now: new Date(at().getTime() + 3 * HOUR) });
    assert.deepEqual([rerun.closedDays, rerun.sent, fake.stats.meterEventCalls], [[], 0, calls]);
  });

  it('does not close a day before it has ended and settled', async () => {
    const acme = await customerTeam('acme');
    await usage(acme.id, 'builds', 1, 1);
    const early = await upload({ now: new Date(todayStart + 30 * 60_000) });
    assert.equal(early.closedDays.at(-1), day(2));
    assert.equal(fake.meterEvents.size, 0);
    assert.equal((await upload()).sent, 1);
  });

  it("catches up the days missed while it was down, and reports days beyond Stripe's window as lost", async () => {
    const acme = await customerTeam('acme');
    await upload({ now: at(5) });
    for (const n of [5, 4, 3, 2, 1]) await usage(acme.id, 'builds', n, n);
    const result = await upload();
    assert.deepEqual(result.closedDays, [day(5), day(4), day(3), day(2), day(1)]);
    assert.deepEqual([...fake.meterEvents.values()].map((e) => e.value).sort(), [1, 2, 3, 4, 5]);

    await db()('usageUploadDays').delete();
    await db()('usageUploadDays').insert({ day: day(40) });
    const late = await upload();
    // Days 39 to 34 ago are past Stripe's 35-day limit (with a margin); 33 to 1 are caught up.
    assert.deepEqual(late.lostDays, [39, 38, 37, 36, 35, 34].map(day));
    assert.equal(late.closedDays[0], day(33));
  });

  it('backs off on 429s, keeps one call per customer and meter, and counts "identifier already exists" as sent', async () => {
    fake.meterEventLatencyMs = 15;
    const teams = await Promise.all(['a1', 'a2', 'a3', 'a4'].map((s) => customerTeam(s)));
    for (const t of teams) {
      for (const n of [3, 2, 1]) {
        await usage(t.id, 'machine_seconds', n, 60);
        await usage(t.id, 'builds', n, 1);
      }
    }
    await upload({ now: at(3) }); // the days before, so three days are pending next
    fake.fail('/v1/billing/meter_events', 429, 3);
    // An earlier run sent this one and died before writing it down.
    const already = identifierOf(teams[0].id, 'builds', day(2));
    fake.meterEvents.set(already, { identifier: already, eventName: 'rhone_builds', customer: 'cus_a1', value: 1, timestamp: 0 });

    const result = await upload({ concurrency: 8 });
    assert.deepEqual([result.sent, result.alreadySent, result.rateLimited, result.pending, result.failed], [4 * 2 * 3 - 1, 1, 3, 0, 0]);
    assert.equal(fake.stats.rateLimited, 3, 'only the injected 429s: never two calls at once for one customer and meter');
    assert.equal(fake.meterEvents.size, 4 * 2 * 3);
    assert.ok(fake.stats.maxInFlight > 1, 'different customers and meters go in parallel');
    assert.ok(fake.stats.maxInFlight <= 8);
    assert.deepEqual(await db()('stripeUsageUploads').whereNot({ status: 'sent' }).count('* as n').first(), { n: 0 });
  });

  it('marks a refused event failed, leaves one Stripe could not take pending for the next attempt', async () => {
    const acme = await customerTeam('acme');
    await usage(acme.id, 'builds', 1, 1);
    await usage(acme.id, 'machine_seconds', 1, 10);
    await upload({ now: at(1) });
    fake.fail('/v1/billing/meter_events', 400, 1);
    fake.fail('/v1/billing/meter_events', 500, 3); // stripe-node retries twice, then gives up
    const first = await upload();
    assert.deepEqual([first.failed, first.pending, first.sent], [1, 1, 0]);
    const second = await upload();
    assert.deepEqual([second.failed, second.pending, second.sent], [0, 0, 1]);
    const statuses = (await db()('stripeUsageUploads').orderBy('meter').select('meter', 'status', 'lastError')) as {
      meter: string;
      status: string;
      lastError: string | null;
    }[];
    assert.deepEqual(
      statuses.map((s) => [s.meter, s.status]),
      [
        ['builds', 'failed'],
        ['machine_seconds', 'sent'],
      ],
    );
    assert.match(statuses[0].lastError!, /^400: /);
  });

  it('in local mode records nothing for Stripe and says once per run why it skipped', async () => {
    const acme = await customerTeam('acme');
    await usage(acme.id, 'builds', 1, 1);
    const lines: string[] = [];
    const log = pino(
      { level: 'info' },
      new Writable({
        write(chunk, _enc, done) {
          lines.push(String(chunk));
          done();
        },
      }),
    );
    const result = await uploadUsage(db(), null, { log, now: at() });
    assert.equal(result.skipped, 'stripe_not_configured');
    assert.equal(lines.length, 1);
    assert.match(JSON.parse(lines[0]).msg, /skipped the upload to Stripe because STRIPE_SECRET_KEY is not set/);
    assert.equal(Number((await db()('stripeUsageUploads').count('* as n'))[0].n), 0);
  });

  it('killed in the middle of an upload, then run again: every event sent once, none missing', async () => {
    fake.meterEventLatencyMs = 20;
    const teams = await Promise.all(Array.from({ length: 12 }, (_, i) => customerTeam(`k${i}`)));
    const expected = new Map<string, number>();
    for (const [i, t] of teams.entries()) {
      for (const n of [3, 2, 1]) {
        for (const meter of ['machine_seconds', 'builds', 'bandwidth'] as const) {
          const quantity = meter === 'bandwidth' ? (i + n) * 1_000_000 : i + n;
          await usage(t.id, meter, n, quantity);
          expected.set(identifierOf(t.id, meter, day(n)), i + n);
        }
      }
    }
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./upload-usage-child.ts', import.meta.url)), at().toISOString(), '4'], {
      env: { ...process.env, STRIPE_SECRET_KEY: fake.apiKey, STRIPE_API_URL: fake.url },
      stdio: 'ignore',
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    const deadline = Date.now() + 30_000;
    while (fake.meterEvents.size < 30 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    // Calls the child had in flight still reach the fake's books; let them land before counting.
    await new Promise((r) => setTimeout(r, 200));
    const sentBeforeKill = fake.meterEvents.size;
    assert.ok(sentBeforeKill >= 30 && sentBeforeKill < expected.size, `killed after ${sentBeforeKill} of ${expected.size} events`);
    const callsBeforeRerun = fake.stats.meterEventCalls;

    const rerun = await upload({ concurrency: 4 });
    assert.equal(rerun.pending + rerun.failed, 0);
    // Only the calls in flight at the kill are sent again, and Stripe refuses those as duplicates.
    assert.ok(rerun.alreadySent <= 4, `${rerun.alreadySent} re-sent`);
    assert.equal(fake.stats.meterEventCalls - callsBeforeRerun, expected.size - sentBeforeKill + rerun.alreadySent);
    assert.deepEqual(new Map([...fake.meterEvents.values()].map((e) => [e.identifier, e.value])), expected);
    assert.equal(fake.stats.duplicateIdentifiers, rerun.alreadySent);
  });

  it('is scheduled daily at 01:10 UTC (controlled clock) and runs as a job on a real worker', async () => {
    const connection = { url: getConfig().redisUrl, maxRetriesPerRequest: null };
    const ctx = { connection, prefix: `t-${randomUUID()}` };
    const realNow = Date.now;
    const clock = Date.parse('2026-03-14T22:05:00Z');
    Date.now = () => clock;
    try {
      await registerSchedules(ctx);
    } finally {
      Date.now = realNow;
    }
    const scheduler = await queue(ctx, 'uploadUsage').getJobScheduler('upload-usage-daily');
    assert.equal(scheduler?.next, Date.parse('2026-03-15T01:10:00Z'));
    await queue(ctx, 'uploadUsage').removeJobScheduler('upload-usage-daily');

    const acme = await customerTeam('acme');
    await usage(acme.id, 'builds', 2, 3); // two days ago: closed whatever the time of day the test runs
    const config = { ...getConfig(), stripe: fake.stripeConfig };
    const [worker] = startWorkers({ ...ctx, knex: db(), log: silent, config, only: ['uploadUsage'] });
    try {
      const done = new Promise<unknown>((resolve, reject) => {
        worker.on('completed', (_job: Job, result: unknown) => resolve(result));
        worker.on('failed', (_job: Job | undefined, err: Error) => reject(err));
      });
      await queue(ctx, 'uploadUsage').add('upload-usage', {});
      const result = (await done) as { sent: number };
      assert.equal(result.sent, 1);
      assert.equal(fake.meterEvents.get(identifierOf(acme.id, 'builds', day(2)))?.value, 3);
    } finally {
      await worker.close();
    }
  });
});
