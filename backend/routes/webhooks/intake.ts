// How an unauthenticated webhook body is let in. Anyone can POST to /webhooks/*, and a body cannot be
// trusted until all of it has been read and its signature checked, so what reading costs is bounded
// before the first byte is read:
//   1. headers first: no well-formed signature header, or a Content-Length over the cap, is refused
//      at once and the connection closed (the body is never read);
//   2. requests per source address per minute, counted in Redis (every api process shares them): 429;
//   3. bodies being read at once, per source address (429) and in all (503), counted in this process
//      (the memory they use is this process's);
//   4. the body is read in chunks, fed to the HMAC as they come, and cut off at the cap (413) or after
//      BODY_DEADLINE_MS (408). The chunks are kept (the JSON is parsed only once the signature
//      matched) and joined only then: a body whose signature fails is never copied into one buffer
//      or decoded into a string.
import type { Context } from 'koa';
import type { IncomingMessage } from 'node:http';
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError, RateLimitedError } from '../../lib/errors.ts';

/** GitHub gives up on a delivery after 10 s; a body still arriving after this is not GitHub's. */
const BODY_DEADLINE_MS = 30_000;

export interface IntakeLimits {
  maxInFlight: number;
  maxInFlightPerAddress: number;
  perMinutePerAddress: number;
}

/**
 * How long a sender waits for a slot before it is refused. GitHub gives up on a delivery after 10 s
 * and never redelivers on its own, so a burst from one of its addresses waits its turn (the body is
 * not read meanwhile) rather than being refused at once; a held connection costs a socket, not memory.
 */
export const SLOT_WAIT_MS = 3_000;

/** Bodies being read now, in all and per source address. */
export class WebhookGate {
  private total = 0;
  private readonly byAddress = new Map<string, number>();
  private readonly waiting = new Set<() => void>();

  constructor(
    private readonly limits: Pick<IntakeLimits, 'maxInFlight' | 'maxInFlightPerAddress'>,
    private readonly waitMs = SLOT_WAIT_MS,
  ) {}

  /**
   * Takes a slot for `address` (release it with the function returned, once), waiting up to the
   * gate's wait for one to free; then throws 429 (this address) or 503 (all). `gone` aborts the wait
   * when the sender disconnects.
   */
  async enter(address: string, gone?: AbortSignal): Promise<() => void> {
    const giveUpAt = Date.now() + this.waitMs;
    for (;;) {
      const taken = this.take(address);
      if (taken) return taken;
      const left = giveUpAt - Date.now();
      if (left <= 0 || gone?.aborted) throw this.refusal(address);
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          gone?.removeEventListener('abort', wake);
          this.waiting.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        gone?.addEventListener('abort', wake, { once: true });
        this.waiting.add(wake);
      });
    }
  }

  /** Bodies being read now: from `address`, or in all. */
  inFlight(address?: string): number {
    return address === undefined ? this.total : (this.byAddress.get(address) ?? 0);
  }

  /** Senders waiting for a slot. */
  get queued(): number {
    return this.waiting.size;
  }

  private take(address: string): (() => void) | undefined {
    const mine = this.byAddress.get(address) ?? 0;
    if (mine >= this.limits.maxInFlightPerAddress || this.total >= this.limits.maxInFlight) return undefined;
    this.total++;
    this.byAddress.set(address, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.byAddress.get(address) ?? 1) - 1;
      if (left > 0) this.byAddress.set(address, left);
      else this.byAddress.delete(address);
      // Few waiters at most: each looks again whether its slot is free.
      for (const wake of [...this.waiting]) wake();
    };
  }

  private refusal(address: string): TooManyInFlightError {
    const mine = this.byAddress.get(address) ?? 0;
    if (mine >= this.limits.maxInFlightPerAddress) {
      return new TooManyInFlightError(
        429,
        'too_many_in_flight',
        `This address already has ${mine} webhook bodies being sent; send one at a time (at most ${this.limits.maxInFlightPerAddress} at once).`,
      );
    }
    return new TooManyInFlightError(503, 'webhooks_busy', 'This server is reading as many webhook bodies as it takes at once; send it again in a moment.');
  }
}

/** A refusal of a body because too many are being read; the sender may try again in a second. */
export class TooManyInFlightError extends AppError {
  readonly retryAfterSeconds = 1;
}

/** Requests per source address per minute, before any body is read. */
export function webhookRateLimit(redis: Redis, perMinute: number): (ctx: Context) => Promise<void> {
  const limiter = new RateLimiterRedis({ storeClient: redis, keyPrefix: 'rl:webhooks', points: perMinute, duration: 60 });
  return async (ctx) => {
    try {
      await limiter.consume(ctx.ip);
    } catch (res) {
      if (res instanceof RateLimiterRes) throw new RateLimitedError(Math.max(1, Math.ceil(res.msBeforeNext / 1000)));
      throw res;
    }
  };
}

/** A refusal that leaves the rest of the body unread: the connection is closed after the answer. */
export function refuseUnread(ctx: Context, err: AppError): never {
  ctx.set('Connection', 'close');
  throw err;
}

export function tooLarge(limit: number, sender: string): AppError {
  return new AppError(413, 'payload_too_large', `The body is larger than the ${limit / 1024 / 1024} MB ${sender} sends at most.`);
}

/** Refuses at once a declared length over `limit`, without reading the body. */
export function checkDeclaredLength(ctx: Context, limit: number, sender: string): void {
  const length = ctx.request.length;
  if (length !== undefined && length > limit) refuseUnread(ctx, tooLarge(limit, sender));
}

/**
 * Reads the body in chunks, calling `onChunk` with each as it arrives; at most `limit` bytes (413,
 * and the rest is not read), within BODY_DEADLINE_MS (408). Returns the chunks, not joined.
 */
export async function readChunks(ctx: Context, limit: number, sender: string, onChunk: (chunk: Buffer) => void): Promise<Buffer[]> {
  const req: IncomingMessage = ctx.req;
  const chunks: Buffer[] = [];
  let size = 0;
  const timer = setTimeout(() => req.destroy(new BodyTimeoutError()), BODY_DEADLINE_MS);
  try {
    for await (const chunk of req) {
      const buf = chunk as Buffer;
      size += buf.length;
      if (size > limit) refuseUnread(ctx, tooLarge(limit, sender));
      onChunk(buf);
      chunks.push(buf);
    }
  } catch (err) {
    if (err instanceof AppError) throw err;
    if (err instanceof BodyTimeoutError)
      refuseUnread(ctx, new AppError(408, 'body_timeout', `The body did not arrive within ${BODY_DEADLINE_MS / 1000} s; send it again.`));
    // The sender went away mid-body: nobody is left to answer.
    throw new AppError(400, 'body_incomplete', 'The connection closed before the whole body arrived; send it again.');
  } finally {
    clearTimeout(timer);
  }
  return chunks;
}

class BodyTimeoutError extends Error {}
