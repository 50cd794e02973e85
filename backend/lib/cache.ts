// In-process read caches for the api's hot path (session → user, team access, app lists), kept
// correct across processes by tag invalidation over Redis pub/sub.
//
// How it stays correct:
// - Every write that changes cached data calls invalidate(tags) after its transaction commits and
//   before the response is sent. That evicts the tags from every cache of this process at once,
//   publishes them, and waits until every subscribed api process has confirmed it evicted them
//   too. Redis may deliver a message a few milliseconds after it answered the publisher (seen
//   here under load), so without the confirmation a client could still read the old value from
//   another process right after the response.
// - A cache serves only while its node's subscriber is subscribed. When that connection drops,
//   the caches are cleared and bypassed; they come back, empty, once it has subscribed again
//   (messages sent in between are lost, so nothing cached before may be trusted).
// - A value read from Postgres is stored only if none of its tags was evicted since the read began
//   (TaggedCache begin() → set()), so a read racing a write cannot put the old row back.
// - The TTL (30 s) is only a safety net, never the mechanism.
// What is left: a process that takes longer than ACK_TIMEOUT_MS to confirm (blocked or dying) may
// serve the old value until it reads the message; the writer logs a warning when that happens.
//
// WHAT LATER CODE MUST DO. Tags: `session:<id>`, `user:<id>`, `team:<id>`, `token:<id>`.
// - Revoking an API token calls invalidate(['token:<id>']): nothing caches tokens, but live event
//   streams listen (onEvict) to re-check their viewer's access at once.
// - A write to users (profile, login, deletion) calls invalidate(['user:<id>']); ending a session
//   outside endSession (sign out everywhere, user deletion) invalidates its session or user tag.
// - A write to teams (plan, subscription, slug), team_members or apps must end in
//   `team:<teamId>` being invalidated. recordAudit() does it for you (after the commit when given a
//   transaction from lib/transaction.ts: use that helper rather than knex.transaction); a write that
//   records no audit event calls invalidateOnCommit(trx, tags) or invalidate(tags) itself. Worker
//   processes too: invalidate() publishes through the shared Redis connection.
// - Direct SQL in tests or scripts bypasses all of this: invalidate afterwards, or expect stale reads
//   for up to the TTL.
// - The api's Redis connection (createApp's `redis`) and REDIS_URL must name the same database: the
//   channel is per database, so that installs sharing a Redis server do not disturb each other.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { redis as sharedRedis } from '../redis.ts';
import { logger } from './logger.ts';
import { TaggedCache, type CacheOptions } from './tagged-cache.ts';

export { TaggedCache, type CacheOptions } from './tagged-cache.ts';

export const tag = {
  session: (id: string) => `session:${id}`,
  user: (id: string) => `user:${id}`,
  team: (id: string) => `team:${id}`,
  /** Nothing caches tokens; revoking one publishes it so live event streams re-check at once. */
  token: (id: string) => `token:${id}`,
};

/** How long a write waits for the other processes to confirm their eviction. */
export const ACK_TIMEOUT_MS = 1000;
const ACK_TTL_MS = 60_000;
const ackKey = (id: string) => `rhone:cache:ack:${id}`;

/** The invalidation channel of the Redis database this connection uses. */
export function invalidationChannel(redis: Redis): string {
  return `rhone:cache:invalidate:${redis.options.db ?? 0}`;
}

interface Registry {
  /** Says which process published a message: this process has already evicted its own tags. */
  origin: string;
  /** Every cache node of this process: invalidate() evicts from all of them. */
  nodes: Set<{ evict(tags: readonly string[]): void }>;
}

// Kept on globalThis: should this module ever be loaded twice in one process (a CommonJS and an
// ES module copy, as test runners can do), both copies must still evict each other's caches.
const registry: Registry = ((globalThis as { [key: symbol]: Registry })[Symbol.for('rhone.cache.registry')] ??= {
  origin: randomUUID(),
  nodes: new Set(),
});
export const PROCESS_ORIGIN = registry.origin;
const nodes = registry.nodes;

/**
 * One api instance's caches and the Redis subscriber that keeps them honest. Its caches serve only
 * while the subscriber is subscribed.
 */
export class CacheNode {
  private readonly caches = new Map<string, TaggedCache<unknown>>();
  private readonly subscriber: Redis;
  private readonly channel: string;
  private live = false;
  private attempt = 0;
  private closed = false;
  private waiters: Array<() => void> = [];
  private readonly listeners = new Set<(tags: readonly string[]) => void>();

  private readonly serve: boolean;

  /**
   * `redis` is an ordinary connection, used for confirmations; the subscriber is a duplicate.
   * `serve: false` keeps every cache bypassed (it still confirms invalidations, so writers do not wait).
   */
  constructor(
    private readonly redis: Redis,
    options: { serve?: boolean } = {},
  ) {
    this.serve = options.serve ?? true;
    this.channel = invalidationChannel(redis);
    // Its own connection (a subscribed connection can do nothing else). autoResubscribe is off
    // because ioredis says 'ready' before its resubscription is confirmed; we subscribe ourselves.
    this.subscriber = redis.duplicate({ autoResubscribe: false, connectionName: 'rhone-cache-invalidation' });
    this.subscriber.on('ready', () => this.subscribe());
    for (const event of ['error', 'close', 'end', 'reconnecting'] as const) {
      this.subscriber.on(event, (err?: unknown) => this.lost(event, err));
    }
    this.subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.onMessage(message);
    });
    nodes.add(this);
    if (this.subscriber.status === 'ready') this.subscribe();
  }

  /** The named cache of this node, created on first use. */
  cache<V>(name: string, options?: CacheOptions): TaggedCache<V> {
    let c = this.caches.get(name);
    if (!c) {
      c = new TaggedCache<unknown>(name, options);
      c.reset(this.live && this.serve);
      this.caches.set(name, c);
    }
    return c as TaggedCache<V>;
  }

  get serving(): boolean {
    return this.live;
  }

  /** Resolves once the caches serve (the subscriber is subscribed), or after timeoutMs. */
  whenServing(timeoutMs = 5000): Promise<boolean> {
    if (this.live) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(this.live), timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  evict(tags: readonly string[]): void {
    for (const c of this.caches.values()) c.evict(tags);
    for (const listener of this.listeners) listener(tags);
  }

  /**
   * Calls `listener` with the tags of every eviction this node makes, local or from another
   * process (long-lived responses such as event streams re-check access on it). Returns the
   * unsubscribe function. Messages missed while the subscriber is down are not replayed: a
   * listener that must not miss one also re-checks on a timer.
   */
  onEvict(listener: (tags: readonly string[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** For tests: the subscriber connection, to break it on purpose. */
  get subscriberConnection(): Redis {
    return this.subscriber;
  }

  async close(): Promise<void> {
    this.closed = true;
    nodes.delete(this);
    this.setLive(false);
    await this.subscriber.quit().catch(() => this.subscriber.disconnect());
  }

  private subscribe(): void {
    if (this.closed) return;
    const attempt = ++this.attempt;
    this.setLive(false);
    this.subscriber.subscribe(this.channel).then(
      () => {
        // Serve only if nothing went wrong with the connection since we asked.
        if (attempt === this.attempt && !this.closed && this.subscriber.status === 'ready') this.setLive(true);
      },
      (err: unknown) => this.lost('subscribe failed', err),
    );
  }

  private lost(event: string, err?: unknown): void {
    this.attempt++;
    if (this.live) logger().warn({ event, err }, 'cache invalidation subscriber lost; caches cleared and bypassed until it is back');
    this.setLive(false);
    // An error that did not take the connection down: subscribe again to come back.
    if (event === 'error' && this.subscriber.status === 'ready') this.subscribe();
  }

  private setLive(live: boolean): void {
    // Cleared on both edges: going down, messages may be missed from now on; coming up, they may
    // have been missed until now.
    this.live = live;
    for (const c of this.caches.values()) c.reset(live && this.serve);
    if (live) {
      for (const wake of this.waiters.splice(0)) wake();
    }
  }

  private onMessage(message: string): void {
    let parsed: { origin?: unknown; id?: unknown; tags?: unknown };
    try {
      parsed = JSON.parse(message) as typeof parsed;
    } catch {
      parsed = {};
    }
    if (!Array.isArray(parsed.tags) || !parsed.tags.every((t) => typeof t === 'string')) {
      // Cannot tell what changed: forget everything rather than risk serving it.
      logger().warn({ message: message.slice(0, 200) }, 'unreadable cache invalidation message; caches cleared');
      this.setLive(this.live);
    } else if (parsed.origin !== PROCESS_ORIGIN) {
      this.evict(parsed.tags as string[]);
    }
    // Every subscriber confirms (this process's too: it evicted before publishing), so the writer
    // can count confirmations against the number of subscribers Redis delivered to.
    if (typeof parsed.id === 'string') {
      const key = ackKey(parsed.id);
      this.redis
        .pipeline()
        .incr(key)
        .pexpire(key, ACK_TTL_MS)
        .exec()
        .catch((err: unknown) => {
          logger().warn({ err }, 'could not confirm a cache invalidation');
        });
    }
  }
}

/** Waits until `receivers` subscribers have confirmed the message, polling, for ACK_TIMEOUT_MS at most. */
async function confirmations(redis: Redis, id: string, receivers: number, tags: readonly string[]): Promise<void> {
  const deadline = Date.now() + ACK_TIMEOUT_MS;
  for (let pause = 1; ; pause = Math.min(pause * 2, 16)) {
    const confirmed = Number((await redis.get(ackKey(id))) ?? 0);
    if (confirmed >= receivers) return;
    if (Date.now() >= deadline) {
      logger().warn({ tags, receivers, confirmed }, `not every api process confirmed a cache invalidation within ${ACK_TIMEOUT_MS} ms`);
      return;
    }
    await sleep(pause);
  }
}

/**
 * Evicts the tags from every cache in this process (synchronously, before the first await), then
 * from every other process, and resolves once they have confirmed. Call it after the write has
 * committed. A Redis failure is logged and does not fail the write, which has happened: other
 * processes then hold the old value for at most the TTL, unless their subscribers lost Redis too
 * (then they are bypassing their caches).
 */
export async function invalidate(tags: readonly string[]): Promise<void> {
  if (tags.length === 0) return;
  for (const node of nodes) node.evict(tags);
  const redis = sharedRedis();
  const id = randomUUID();
  try {
    const receivers = await redis.publish(invalidationChannel(redis), JSON.stringify({ origin: PROCESS_ORIGIN, id, tags }));
    if (receivers > 0) await confirmations(redis, id, receivers, tags);
  } catch (err) {
    logger().error({ err, tags }, 'could not publish a cache invalidation; other api processes may serve these for up to 30 s');
  }
}
