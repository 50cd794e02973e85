// The child of apiProcess() (api-process.ts): the real api as backend/server.ts builds it, with the
// test settings it inherits, on an ephemeral port. Reports the port once its caches serve; exits
// with its parent.
import type { AddressInfo } from 'node:net';
import { getConfig } from '../../backend/config.ts';
import { db } from '../../backend/db.ts';
import { redis } from '../../backend/redis.ts';
import { logger } from '../../backend/lib/logger.ts';
import { appCaches, createApp } from '../../backend/app.ts';

const app = createApp({ config: getConfig(), knex: db(), redis: redis(), log: logger(), rateLimits: { signInPerMinute: 1000, writesPerMinute: 10_000 } });
if (!(await appCaches(app)!.whenServing())) throw new Error('the cache invalidation subscriber did not subscribe');
const server = app.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as AddressInfo).port }));
const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('disconnect', stop);
