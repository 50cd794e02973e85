// What keeps a live event stream honest after it has started: its viewer's access is checked
// again on every invalidation that may have taken it away (lib/cache.ts tags) and on a timer, and
// each user holds a bounded number of streams across every api process.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Actor } from '../../middleware/auth.ts';
import { tag } from '../../lib/cache.ts';
import { TooManyStreamsError } from '../../lib/errors.ts';

/**
 * Whether the actor may still read the team's deployments: still a member, and still signed in
 * through the same live session or unrevoked, unexpired token. Read from Postgres, never a cache:
 * this is what decides that a cached answer went stale.
 */
export async function stillAllowed(knex: Knex, actor: Actor, teamId: string): Promise<boolean> {
  const now = new Date();
  const [member, session, token] = await Promise.all([
    knex('team_members').where({ teamId, userId: actor.user.id }).first('user_id'),
    actor.sessionId ? knex('sessions').where({ id: actor.sessionId }).whereNull('revokedAt').where('expiresAt', '>', now).first('id') : true,
    actor.tokenId
      ? knex('api_tokens')
          .where({ id: actor.tokenId })
          .whereNull('revokedAt')
          .where((q) => q.whereNull('expiresAt').orWhere('expiresAt', '>', now))
          .first('id')
      : true,
  ]);
  return Boolean(member && session && token);
}

export interface AccessWatch {
  stop(): void;
}

/**
 * Checks access now, then every `everyMs` and whenever one of the actor's or the team's tags is evicted;
 * calls onLost once access is gone, onError if a check could not be made. `onTick` runs with each
 * timed check (the stream slot's refresh rides on it).
 */
export function watchAccess(options: {
  knex: Knex;
  actor: Actor;
  teamId: string;
  everyMs: number;
  onLost: () => void;
  onError: (err: unknown) => void;
  onTick?: () => void;
}): AccessWatch {
  const { knex, actor, teamId } = options;
  const watched = new Set([tag.user(actor.user.id), tag.team(teamId)]);
  if (actor.sessionId) watched.add(tag.session(actor.sessionId));
  if (actor.tokenId) watched.add(tag.token(actor.tokenId));
  let stopped = false;
  let running = false;
  let again = false;
  const check = async (): Promise<void> => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        if (!(await stillAllowed(knex, actor, teamId)) && !stopped) {
          stopped = true;
          options.onLost();
        }
      } while (again && !stopped);
    } catch (err) {
      if (!stopped) options.onError(err);
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => {
    options.onTick?.();
    void check();
  }, options.everyMs);
  const unlisten = actor.caches?.onEvict((tags) => {
    if (tags.some((t) => watched.has(t))) void check();
  });
  void check();
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
      unlisten?.();
    },
  };
}

// A sorted set per user: one member per open stream, scored by when it lapses unless refreshed,
// so the streams of an api process that died without releasing them stop counting on their own.
const ACQUIRE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`;
const slotsKey = (userId: string) => `rhone:event-streams:${userId}`;

export interface StreamSlot {
  refresh(): void;
  release(): Promise<void>;
}

/**
 * Takes one of the user's `max` stream places, counted in Redis so that every api process shares
 * the count; throws TooManyStreamsError when none is free. A place lapses `ttlMs` after its last
 * refresh.
 */
export async function acquireStreamSlot(redis: Redis, userId: string, max: number, ttlMs: number, log?: Logger): Promise<StreamSlot> {
  const key = slotsKey(userId);
  const id = randomUUID();
  const now = Date.now();
  const taken = await redis.eval(ACQUIRE, 1, key, String(now), String(now + ttlMs), id, String(max), String(ttlMs));
  if (Number(taken) !== 1) throw new TooManyStreamsError(max);
  return {
    refresh() {
      redis
        .pipeline()
        .zadd(key, Date.now() + ttlMs, id)
        .pexpire(key, ttlMs)
        .exec()
        .catch((err: unknown) => log?.warn({ err, userId }, "could not refresh an event stream's place; it lapses on its own"));
    },
    async release() {
      await redis.zrem(key, id).catch((err: unknown) => log?.warn({ err, userId }, "could not release an event stream's place; it lapses on its own"));
    },
  };
}
