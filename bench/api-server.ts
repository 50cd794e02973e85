// Child process of bench/api.ts: the real Rhone api (createApp, the process's knex, Redis and
// logger, default rate limits), as backend/server.ts builds it, on an ephemeral port of 127.0.0.1.
// The environment comes from the parent. Reports its port over the IPC channel and exits when the
// parent goes away. Extra node flags (e.g. --cpu-prof) can be passed with BENCH_SERVER_NODE_ARGS.
import type { AddressInfo } from 'node:net';
import { configOrExit } from '../backend/config.ts';
import { closeDb, db } from '../backend/db.ts';
import { closeRedis, redis } from '../backend/redis.ts';
import { logger } from '../backend/lib/logger.ts';
import { closeApp, createApp } from '../backend/app.ts';

const config = configOrExit();
// BENCH_UNCACHED=1: the read caches off, so every request runs its queries.
const app = createApp({ config, knex: db(), redis: redis(), log: logger(), readCache: process.env.BENCH_UNCACHED !== '1' });

const server = app.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as AddressInfo).port });
});
server.keepAliveTimeout = 65_000;

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  server.close(async () => {
    await Promise.allSettled([closeApp(app), closeDb(), closeRedis()]);
    process.exit(0);
  });
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('disconnect', stop);
