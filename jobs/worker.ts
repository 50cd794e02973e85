// The worker process: `node --import tsx jobs/worker.ts`. Runs every registered processor.
import { Worker, type ConnectionOptions } from 'bullmq';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { configOrExit } from '../backend/config.ts';
import { closeDb, db } from '../backend/db.ts';
import { logger } from '../backend/lib/logger.ts';
import { closeQueues, QUEUES, type QueueKey } from './queues.ts';
import { PROCESSORS } from './processors/index.ts';
import { registerSchedules } from './schedules.ts';

export interface WorkerOptions {
  connection: ConnectionOptions;
  prefix?: string;
  knex: Knex;
  log: Logger;
}

export function startWorkers({ connection, prefix, knex, log }: WorkerOptions): Worker[] {
  const workers: Worker[] = [];
  for (const [key, make] of Object.entries(PROCESSORS) as [QueueKey, NonNullable<(typeof PROCESSORS)[QueueKey]>][]) {
    const def = QUEUES[key];
    const worker = new Worker(def.name, make({ knex }), { connection, prefix, concurrency: def.concurrency });
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
  const workers = startWorkers({ connection, knex: db(), log });
  // In production the worker process group also keeps the schedules registered.
  if (process.argv.includes('--with-scheduler')) await registerSchedules({ connection });
  log.info({ queues: workers.map((w) => w.name) }, 'worker started');
  const stop = async () => {
    log.info('shutting down worker');
    await Promise.allSettled(workers.map((w) => w.close()));
    await Promise.allSettled([closeQueues(), closeDb()]);
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}
