// Repeatable work, registered with BullMQ job schedulers. Upserting is idempotent, so every
// scheduler process (and every restart) may run it.
import type { Logger } from 'pino';
import { queue, QUEUES, type QueueContext, type QueueKey } from './queues.ts';

export const SCHEDULES: { id: string; queue: QueueKey; every?: number; pattern?: string }[] = [
  // 03:17 UTC: away from the hour, when everyone else's cron runs.
  { id: 'housekeeping-daily', queue: 'housekeeping', pattern: '17 3 * * *' },
  // Finds deployments whose worker died, and deployments waiting for nothing.
  { id: 'reaper', queue: 'reaper', every: 30_000 },
  // 01:10 UTC: yesterday's usage to Stripe, once the day has settled (backend/billing/upload-usage.ts SETTLE_MS).
  { id: 'upload-usage-daily', queue: 'uploadUsage', pattern: '10 1 * * *' },
  // Machine time and bandwidth since the last poll; a missed run only makes the next window longer.
  { id: 'poll-usage', queue: 'pollUsage', every: 5 * 60_000 },
  // Custom domains waiting for their certificate; each is checked on its own backoff (next_check_at).
  { id: 'check-certificates', queue: 'checkCertificates', every: 60_000 },
];

export async function registerSchedules(ctx: QueueContext): Promise<string[]> {
  for (const s of SCHEDULES) {
    await queue(ctx, s.queue).upsertJobScheduler(s.id, s.every ? { every: s.every } : { pattern: s.pattern!, tz: 'UTC' }, {
      name: s.queue,
      data: {},
    });
  }
  return SCHEDULES.map((s) => s.id);
}

export const REAPER_TICK_MS = 30_000;

/**
 * Every worker process also adds a reaper run every 30 s, under one job id per 30 s window, so that
 * however many workers there are, one run per window happens. The job scheduler alone is not
 * enough: when Redis loses its keys, the scheduler is gone until a scheduler process registers it
 * again (up to 5 minutes), and with it the only thing that would find the lost stage jobs.
 * Returns a function that stops the ticks.
 */
export function startReaperTicks(ctx: QueueContext, log: Logger, everyMs = REAPER_TICK_MS, now: () => number = Date.now): () => void {
  const tick = () => {
    const jobId = `tick-${Math.floor(now() / everyMs)}`;
    queue(ctx, 'reaper')
      .add(QUEUES.reaper.name, {}, { ...QUEUES.reaper.options, jobId })
      .catch((err: unknown) => log.warn({ err }, 'could not add a reaper run; the next tick tries again'));
  };
  tick();
  const timer = setInterval(tick, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
