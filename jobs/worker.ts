// The worker process: `node --import tsx jobs/worker.ts`. Runs every registered processor.
import { Worker, type ConnectionOptions } from 'bullmq';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { configOrExit, getConfig, type Config } from '../backend/config.ts';
import { closeDb, db } from '../backend/db.ts';
import { closeRedis } from '../backend/redis.ts';
import { logger } from '../backend/lib/logger.ts';
import { closeQueues, QUEUES, type QueueKey } from './queues.ts';
import { PROCESSORS } from './processors/index.ts';
import { registerSchedules, startReaperTicks } from './schedules.ts';
import { closeCancelWatch } from './cancel.ts';
import { removeOrphanWorkDirs } from './work-dirs.ts';

export interface WorkerOptions {
  connection: ConnectionOptions;
  prefix?: string;
  knex: Knex;
  log: Logger;
  config?: Config;
  /** Only these queues (tests run stage workers apart from the rest). */
  only?: QueueKey[];
  /** How long a job's lock lasts without renewal; a killed worker's job is retried after it. */
  lockMs?: number;
}

/**
 * 15 s locks, renewed by BullMQ every 7.5 s, and a stalled check every 5 s: a killed worker's job
 * is back in its queue within about 20 s (BullMQ marks a job stalled once its lock lapsed at a
 * check), and a busy worker has two renewals' slack before a false stall.
 */
export const LOCK_MS = 15_000;

export function startWorkers({ connection, prefix, knex, log, config = getConfig(), only, lockMs = LOCK_MS }: WorkerOptions): Worker[] {
  const workers: Worker[] = [];
  const deps = { knex, log, config, queues: { connection, prefix } };
  for (const [key, make] of Object.entries(PROCESSORS) as [QueueKey, NonNullable<(typeof PROCESSORS)[QueueKey]>][]) {
    if (only && !only.includes(key)) continue;
    const def = QUEUES[key];
    const worker = new Worker(def.name, make(deps), {
      connection,
      prefix,
      concurrency: def.concurrency,
      // A killed worker's job goes back to the queue after its lock lapses; a job that keeps
      // killing workers ends failed, and the reaper decides what that means for its deployment.
      lockDuration: lockMs,
      stalledInterval: Math.max(250, Math.round(lockMs / 3)),
      maxStalledCount: 2,
    });
    worker.on('failed', (job, err) => log.warn({ queue: def.name, jobId: job?.id, attempt: job?.attemptsMade, err: { message: err.message } }, 'job failed'));
    worker.on('error', (err) => log.error({ queue: def.name, err }, 'worker error'));
    workers.push(worker);
  }
  return workers;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const config = configOrExit();
  const log = logger();
  const connection = { url: config.redisUrl, maxRetriesPerRequest: null };
  // --lock-ms=N: tests that kill workers shorten the time before their jobs are taken over.
  const lockArg = process.argv.find((a) => a.startsWith('--lock-ms='));
  const orphans = await removeOrphanWorkDirs(config.dataDir).catch((err: unknown) => {
    log.warn({ err }, 'could not remove the scratch directories of stopped workers');
    return [];
  });
  if (orphans.length) log.info({ removed: orphans }, 'removed the scratch directories of stopped workers');
  const workers = startWorkers({ connection, knex: db(), log, config, lockMs: lockArg ? Number(lockArg.split('=')[1]) : undefined });
  // In production the worker process group also keeps the schedules registered, again every few
  // minutes so a flushed Redis gets them back (as the scheduler process does locally).
  let scheduleTimer: NodeJS.Timeout | undefined;
  if (process.argv.includes('--with-scheduler')) {
    const register = () => registerSchedules({ connection }).catch((err: unknown) => log.error({ err }, 'could not register schedules; will try again'));
    await register();
    scheduleTimer = setInterval(() => void register(), 5 * 60_000);
  }
  const stopReaperTicks = startReaperTicks({ connection }, log);
  log.info({ queues: workers.map((w) => w.name) }, 'worker started');
  const stop = async () => {
    log.info('shutting down worker');
    clearInterval(scheduleTimer);
    stopReaperTicks();
    await Promise.allSettled(workers.map((w) => w.close()));
    await Promise.allSettled([closeQueues(), closeDb(), closeCancelWatch(), closeRedis()]);
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}
