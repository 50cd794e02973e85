// Repeatable work, registered with BullMQ job schedulers. Upserting is idempotent, so every
// scheduler process (and every restart) may run it.
import { queue, type QueueContext, type QueueKey } from './queues.ts';

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
