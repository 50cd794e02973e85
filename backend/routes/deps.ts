import type { Knex } from 'knex';
import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import type { SessionSealer } from '../lib/session.ts';
import type { rateLimits } from '../middleware/rate-limit.ts';

/** What every route file is built from; passed in, never imported as globals, so tests can vary it. */
export interface Deps {
  config: Config;
  knex: Knex;
  redis: Redis;
  sealer: SessionSealer;
  limits: ReturnType<typeof rateLimits>;
}
