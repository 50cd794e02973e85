// Tests of the deployment pipeline run an api and two stage workers on queues of their own, so
// that any stage may run on either worker, as on production's several worker machines.
import { randomUUID } from 'node:crypto';
import type { Worker } from 'bullmq';
import { pino } from 'pino';
import type { Config } from '../../backend/config.ts';
import { db } from '../../backend/db.ts';
import type { QueueKey } from '../../jobs/queues.ts';
import { startWorkers } from '../../jobs/worker.ts';
import { startTestServer, type TestServer } from '../http.ts';

export interface Pipeline {
  server: TestServer;
  workers: Worker[];
  close(): Promise<void>;
}

export async function startPipeline(config: Config, stages: QueueKey[] = ['clone', 'analyze', 'build', 'deploy']): Promise<Pipeline> {
  const queues = { connection: { url: config.redisUrl, maxRetriesPerRequest: null }, prefix: `t-${randomUUID()}` };
  const server = await startTestServer({ config, queues });
  const log = pino({ level: 'silent' });
  const worker = () => startWorkers({ connection: queues.connection, prefix: queues.prefix, knex: db(), log, config, only: stages });
  const workers = [...worker(), ...worker()];
  return {
    server,
    workers,
    async close() {
      await Promise.all(workers.map((w) => w.close()));
      await server.close();
    },
  };
}
