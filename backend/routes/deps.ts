import type { Knex } from 'knex';
import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import type { SessionSealer } from '../lib/session.ts';
import type { rateLimits } from '../middleware/rate-limit.ts';
import type { CacheNode } from '../lib/cache.ts';
import type { QueueContext } from '../../jobs/queues.ts';

/** What every route file is built from; passed in, never imported as globals, so tests can vary it. */
export interface Deps {
  config: Config;
  knex: Knex;
  redis: Redis;
  sealer: SessionSealer;
  limits: ReturnType<typeof rateLimits>;
  /** This api instance's read caches (lib/cache.ts). */
  caches: CacheNode;
  /** Where jobs are enqueued (tests give each run its own prefix). */
  queues: QueueContext;
}
