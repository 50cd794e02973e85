import { Redis, type RedisOptions } from 'ioredis';
import { getConfig } from './config.ts';

/** A new connection; BullMQ workers need maxRetriesPerRequest: null. */
export function createRedis(url = getConfig().redisUrl, options: RedisOptions = {}): Redis {
  return new Redis(url, { lazyConnect: false, ...options });
}

let shared: Redis | undefined;

export function redis(): Redis {
  shared ??= createRedis();
  return shared;
}

export async function closeRedis(): Promise<void> {
  if (shared) await shared.quit().catch(() => shared?.disconnect());
  shared = undefined;
}
