import type { Context, Next } from 'koa';
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { RateLimitedError } from '../lib/errors.ts';
import type { Actor } from './auth.ts';

export interface RateLimits {
  /** Sign-in attempts per IP per minute. */
  signInPerMinute: number;
  /** Writes (POST, PUT, PATCH, DELETE) per caller per minute. */
  writesPerMinute: number;
}

export const DEFAULT_RATE_LIMITS: RateLimits = { signInPerMinute: 20, writesPerMinute: 300 };

function limiter(redis: Redis, keyPrefix: string, points: number) {
  return new RateLimiterRedis({ storeClient: redis, keyPrefix, points, duration: 60 });
}

async function consume(l: RateLimiterRedis, key: string): Promise<void> {
  try {
    await l.consume(key);
  } catch (res) {
    if (res instanceof RateLimiterRes) throw new RateLimitedError(Math.max(1, Math.ceil(res.msBeforeNext / 1000)));
    throw res;
  }
}

/** Counters live in Redis so every api process shares them. */
export function rateLimits(redis: Redis, limits: RateLimits) {
  const signIn = limiter(redis, 'rl:signin', limits.signInPerMinute);
  const writes = limiter(redis, 'rl:writes', limits.writesPerMinute);
  return {
    signIn: () => async (ctx: Context, next: Next) => {
      await consume(signIn, ctx.ip);
      return next();
    },
    writes: () => async (ctx: Context, next: Next) => {
      if (!['GET', 'HEAD', 'OPTIONS'].includes(ctx.method)) {
        const actor = ctx.state.actor as Actor | undefined;
        await consume(writes, actor ? `user:${actor.user.id}` : `ip:${ctx.ip}`);
      }
      return next();
    },
  };
}
