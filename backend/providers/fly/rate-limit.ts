// Fly limits Machines API calls per action and per machine (or app, for app-scoped actions):
// 1 request/s with a burst of 3, and 5/s with a burst of 10 for getting a machine. We keep to
// those limits ourselves rather than learn them from 429s.

export interface BucketSpec {
  perSecond: number;
  burst: number;
}

export const DEFAULT_LIMIT: BucketSpec = { perSecond: 1, burst: 3 };
export const GET_MACHINE_LIMIT: BucketSpec = { perSecond: 5, burst: 10 };

class TokenBucket {
  private tokens: number;
  private updated: number;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly spec: BucketSpec,
    private readonly now: () => number,
  ) {
    this.tokens = spec.burst;
    this.updated = now();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.spec.burst, this.tokens + ((t - this.updated) / 1000) * this.spec.perSecond);
    this.updated = t;
  }

  /** Resolves when a token is taken; callers are served in arrival order. */
  take(sleep: (ms: number) => Promise<void>): Promise<void> {
    const turn = this.queue.then(async () => {
      this.refill();
      while (this.tokens < 1) {
        await sleep(Math.ceil(((1 - this.tokens) / this.spec.perSecond) * 1000));
        this.refill();
      }
      this.tokens -= 1;
    });
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  idleFor(): number {
    return this.now() - this.updated;
  }
}

export class RateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly sleep: (ms: number) => Promise<void>,
    private readonly now: () => number = Date.now,
  ) {}

  async take(action: string, id: string, spec: BucketSpec): Promise<void> {
    const key = `${action}:${id}`;
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size > 5000) this.evictIdle();
      bucket = new TokenBucket(spec, this.now);
      this.buckets.set(key, bucket);
    }
    await bucket.take(this.sleep);
  }

  private evictIdle(): void {
    for (const [key, bucket] of this.buckets) if (bucket.idleFor() > 60_000) this.buckets.delete(key);
  }
}
