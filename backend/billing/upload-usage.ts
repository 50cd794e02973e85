// upload-usage: the day's usage to Stripe, exactly once, as one meter event per (team, meter, UTC
// day). Two steps, each safe to interrupt and rerun:
//
// 1. Close days. A UTC day is closed once it has ended and SETTLE_MS has passed (poll-usage's late
//    windows land first). Closing sums usage_records per team and meter for the day (a record
//    belongs to the day its window starts in), writes one ledger row each (stripe_usage_uploads,
//    status pending) and marks the day closed (usage_upload_days), in one transaction. Every day
//    since the last closed one is closed, oldest first, but no further back than CATCH_UP_DAYS
//    (Stripe accepts timestamps up to 35 days old); days older than that are reported as lost.
//    Records arriving for a day already closed are not uploaded.
//    Stripe meters take whole numbers: bandwidth is recorded in bytes and sent in MB (1,000,000
//    bytes). A day sends floor((its bytes + the carry) / 1 MB) and carries the remainder to the
//    team's next day, so no byte is lost across days (ledger column `carry`).
// 2. Send what is pending. Identifier `rhone:<team id>:<meter>:<day>`, timestamp the day's
//    23:59:59 UTC. Calls for one customer and meter go one at a time (Stripe's rule); different
//    ones run in parallel. A 429 backs off with jitter and tries again; Stripe's "An event already
//    exists with identifier" means an earlier run sent it (and died before writing that down), so
//    it counts as sent; any other 4xx marks the row failed; 5xx and connection errors (after
//    stripe-node's own retries) leave it pending for the next attempt. A row is marked sent right
//    after Stripe accepted it, so a crash re-sends at most the calls in flight, which Stripe then
//    refuses as duplicates (its identifier check lasts at least 24 h; the ledger guards beyond).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type Stripe from 'stripe';
import { METER_NAMES, METERS, type Meter } from './plans.ts';

const DAY_MS = 86_400_000;
/** How long after a UTC day ends it is closed: poll-usage runs every 5 minutes. */
export const SETTLE_MS = 60 * 60_000;
/** Days back that are still caught up: Stripe takes timestamps up to 35 days old; keep a margin. */
export const CATCH_UP_DAYS = 33;
/** Calls in flight at once (different customer+meter lanes); Stripe's live limit is 1,000 calls/s. */
export const DEFAULT_CONCURRENCY = 50;
const RATE_LIMIT_TRIES = 8;
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 20_000;
const INSERT_BATCH = 1000;

export interface UploadOptions {
  log: Logger;
  now?: Date;
  concurrency?: number;
  /** Backoff after a 429 before try n (0-based); tests shorten it. */
  backoffMs?: (attempt: number) => number;
}

export interface UploadResult {
  skipped?: string;
  closedDays: string[];
  lostDays: string[];
  sent: number;
  alreadySent: number;
  failed: number;
  /** Left pending after this run (rate limited too long, Stripe down): the job tries again. */
  pending: number;
  rateLimited: number;
}

interface LedgerRow {
  id: number;
  teamId: string;
  meter: Meter;
  day: string;
  customerId: string;
  eventName: string;
  value: number;
  identifier: string;
}

const dayString = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const dayStart = (day: string) => Date.parse(`${day}T00:00:00Z`);
export const identifierOf = (teamId: string, meter: Meter, day: string) => `rhone:${teamId}:${meter}:${day}`;

/** The days that may be closed at `now`, oldest first: those that ended SETTLE_MS ago, within the window. */
export function closableDays(now: Date): string[] {
  const latest = Math.floor((now.getTime() - SETTLE_MS) / DAY_MS) - 1;
  return Array.from({ length: CATCH_UP_DAYS }, (_, i) => dayString((latest - CATCH_UP_DAYS + 1 + i) * DAY_MS));
}

function defaultBackoff(attempt: number): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2); // jitter: lanes that collided do not collide again
}

async function closeDay(trx: Knex.Transaction, day: string): Promise<void> {
  const from = new Date(dayStart(day));
  const to = new Date(dayStart(day) + DAY_MS);
  const sums = (await trx('usageRecords as r')
    .join('teams as t', 't.id', 'r.teamId')
    .whereNotNull('t.stripeCustomerId')
    .where('r.windowStart', '>=', from)
    .where('r.windowStart', '<', to)
    .whereIn('r.meter', METER_NAMES)
    .groupBy('r.teamId', 'r.meter', 't.stripeCustomerId')
    .select('r.teamId', 'r.meter', 't.stripeCustomerId as customerId', trx.raw('sum(r.quantity)::bigint as quantity'))) as {
    teamId: string;
    meter: Meter;
    customerId: string;
    quantity: string;
  }[];
  if (sums.length === 0) return;
  // The remainder each team carries into this day, for meters sent in coarser units than recorded.
  const coarse = METER_NAMES.filter((m) => METERS[m].perStripeUnit > 1);
  const carries = (await trx('stripeUsageUploads')
    .distinctOn('teamId', 'meter')
    .whereIn('meter', coarse)
    .where('day', '<', day)
    .orderBy([{ column: 'teamId' }, { column: 'meter' }, { column: 'day', order: 'desc' }])
    .select('teamId', 'meter', 'carry')) as { teamId: string; meter: string; carry: string }[];
  const carryOf = new Map(carries.map((c) => [`${c.teamId}:${c.meter}`, Number(c.carry)]));
  const rows = sums.map((s) => {
    const per = METERS[s.meter].perStripeUnit;
    const total = Number(s.quantity) + (carryOf.get(`${s.teamId}:${s.meter}`) ?? 0);
    const value = Math.floor(total / per);
    return {
      teamId: s.teamId,
      meter: s.meter,
      day,
      customerId: s.customerId,
      eventName: METERS[s.meter].stripeEventName,
      quantity: Number(s.quantity),
      value,
      carry: total - value * per,
      identifier: identifierOf(s.teamId, s.meter, day),
      status: value > 0 ? 'pending' : 'zero',
    };
  });
  for (let i = 0; i < rows.length; i += INSERT_BATCH) {
    await trx('stripeUsageUploads')
      .insert(rows.slice(i, i + INSERT_BATCH))
      .onConflict(['teamId', 'meter', 'day'])
      .ignore();
  }
}

/** Step 1: closes every closable day not closed yet, oldest first. */
export async function closeDays(knex: Knex, now: Date, log: Logger): Promise<{ closed: string[]; lost: string[] }> {
  const days = closableDays(now);
  return knex.transaction(async (trx) => {
    // One closer at a time: two workers running the job at once must not both close a day.
    await trx.raw('select pg_advisory_xact_lock(hashtext(?))', ['rhone:upload-usage:close']);
    const done = new Set(
      ((await trx('usageUploadDays').where('day', '>=', days[0]).select(trx.raw('day::text as day'))) as { day: string }[]).map((r) => r.day),
    );
    const last = (await trx('usageUploadDays').select(trx.raw('max(day)::text as day')).first()) as { day: string | null } | undefined;
    const lost: string[] = [];
    if (last?.day) {
      for (let t = dayStart(last.day) + DAY_MS; t < dayStart(days[0]); t += DAY_MS) lost.push(dayString(t));
      if (lost.length > 0)
        log.error({ from: lost[0], to: lost.at(-1) }, 'upload-usage was down longer than Stripe accepts late usage: these days were not uploaded');
    }
    const closed: string[] = [];
    for (const day of days) {
      if (done.has(day)) continue;
      await closeDay(trx, day);
      await trx('usageUploadDays').insert({ day }).onConflict('day').ignore();
      closed.push(day);
    }
    return { closed, lost };
  });
}

function isDuplicateIdentifier(err: unknown): boolean {
  // Stripe gives this refusal no error code; its message is the only way to tell it apart.
  const e = err as { statusCode?: number; message?: string };
  return e.statusCode === 400 && /already exists with identifier/i.test(e.message ?? '');
}

const statusOf = (err: unknown) => (err as { statusCode?: number }).statusCode;

type Outcome = 'sent' | 'alreadySent' | 'failed' | 'pending';

async function sendOne(
  knex: Knex,
  stripe: Stripe,
  row: LedgerRow,
  opts: Required<Pick<UploadOptions, 'backoffMs' | 'log'>>,
  counts: { rateLimited: number },
): Promise<Outcome> {
  const timestamp = Math.floor((dayStart(row.day) + DAY_MS) / 1000) - 1;
  let lastError = '';
  for (let attempt = 0; attempt < RATE_LIMIT_TRIES; attempt++) {
    try {
      await stripe.billing.meterEvents.create({
        event_name: row.eventName,
        payload: { stripe_customer_id: row.customerId, value: String(row.value) },
        identifier: row.identifier,
        timestamp,
      });
      await knex('stripeUsageUploads')
        .where({ id: row.id })
        .update({ status: 'sent', sentAt: new Date(), attempts: knex.raw('attempts + 1'), lastError: null });
      return 'sent';
    } catch (err) {
      if (isDuplicateIdentifier(err)) {
        await knex('stripeUsageUploads')
          .where({ id: row.id })
          .update({ status: 'sent', sentAt: new Date(), attempts: knex.raw('attempts + 1'), lastError: null });
        return 'alreadySent';
      }
      const status = statusOf(err);
      lastError = `${status ?? 'connection'}: ${(err as Error).message}`.slice(0, 1000);
      if (status === 429) {
        counts.rateLimited += 1;
        await sleep(opts.backoffMs(attempt));
        continue;
      }
      if (status !== undefined && status >= 400 && status < 500 && status !== 409) {
        opts.log.error(
          { identifier: row.identifier, status, err: { message: (err as Error).message } },
          'Stripe refused a meter event; it will not be retried',
        );
        await knex('stripeUsageUploads')
          .where({ id: row.id })
          .update({ status: 'failed', attempts: knex.raw('attempts + 1'), lastError });
        return 'failed';
      }
      break; // 5xx or connection: stripe-node already retried; the next job attempt will
    }
  }
  opts.log.warn({ identifier: row.identifier, lastError }, 'a meter event could not be sent yet');
  await knex('stripeUsageUploads')
    .where({ id: row.id })
    .update({ attempts: knex.raw('attempts + 1'), lastError });
  return 'pending';
}

/** Step 2: sends every pending ledger row inside Stripe's window; one lane per customer and meter. */
export async function sendPending(knex: Knex, stripe: Stripe, options: UploadOptions): Promise<Omit<UploadResult, 'closedDays' | 'lostDays' | 'skipped'>> {
  const now = options.now ?? new Date();
  const oldest = closableDays(now)[0];
  const expired = await knex('stripeUsageUploads')
    .where({ status: 'pending' })
    .where('day', '<', oldest)
    .update({ status: 'failed', lastError: 'older than Stripe accepts (35 days)' });
  if (expired > 0) options.log.error({ rows: expired }, "pending meter events fell outside Stripe's 35-day window and were given up");
  const rows = (await knex('stripeUsageUploads')
    .where({ status: 'pending' })
    .orderBy(['customerId', 'eventName', 'day'])
    .select('id', 'teamId', 'meter', knex.raw('day::text as day'), 'customerId', 'eventName', 'value', 'identifier')) as LedgerRow[];
  const lanes = new Map<string, LedgerRow[]>();
  for (const row of rows) {
    const key = `${row.customerId}\n${row.eventName}`;
    const lane = lanes.get(key);
    if (lane) lane.push(row);
    else lanes.set(key, [row]);
  }
  const counts = { sent: 0, alreadySent: 0, failed: 0, pending: 0, rateLimited: 0 };
  const opts = { backoffMs: options.backoffMs ?? defaultBackoff, log: options.log };
  const queue = [...lanes.values()];
  const worker = async () => {
    for (let lane = queue.shift(); lane; lane = queue.shift()) {
      // One call at a time in a lane: the next day of this customer and meter waits for the last.
      for (const row of lane) counts[await sendOne(knex, stripe, { ...row, value: Number(row.value) }, opts, counts)] += 1;
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency ?? DEFAULT_CONCURRENCY, queue.length) }, worker));
  return counts;
}

/** The whole job: close the days that ended, then send what is pending. Without Stripe, says why not. */
export async function uploadUsage(knex: Knex, stripe: Stripe | null, options: UploadOptions): Promise<UploadResult> {
  const empty = { closedDays: [], lostDays: [], sent: 0, alreadySent: 0, failed: 0, pending: 0, rateLimited: 0 };
  if (!stripe) {
    options.log.info(
      'upload-usage: skipped the upload to Stripe because STRIPE_SECRET_KEY is not set (local mode); usage is still recorded and shown in the dashboard',
    );
    return { skipped: 'stripe_not_configured', ...empty };
  }
  const now = options.now ?? new Date();
  const { closed, lost } = await closeDays(knex, now, options.log);
  const counts = await sendPending(knex, stripe, { ...options, now });
  const result = { closedDays: closed, lostDays: lost, ...counts };
  options.log.info(result, 'upload-usage finished');
  return result;
}
