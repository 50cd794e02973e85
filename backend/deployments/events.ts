// A deployment's progress as one ordered log: status changes and log lines, each with a
// per-deployment sequence number. Postgres holds the truth (replay, paging); Redis carries each
// committed batch to every api process for live fan-out (see EventHub and the SSE route).
import type { Knex } from 'knex';
import type { Redis } from 'ioredis';
import { redis as sharedRedis } from '../redis.ts';
import { logger } from '../lib/logger.ts';
import { NotFoundError } from '../lib/errors.ts';
import { createRedactor, redactedPrefix, type Redactor } from './redact.ts';

export { REDACTED } from './redact.ts';

export type LogStream = 'stdout' | 'stderr' | 'system';
export interface StatusData {
  status: string;
  stage: string | null;
  reason?: string;
}
export interface LogData {
  stage: string;
  stream: LogStream;
  line: string;
  /** When the line was written, ISO 8601. */
  at: string;
}
export type NewEvent = { type: 'status'; data: StatusData } | { type: 'log'; data: LogData };
export type StoredEvent = NewEvent & { seq: number };

export const eventsChannel = (deploymentId: string): string => `deploy:${deploymentId}:events`;

export interface PublishOptions {
  /** Redis connection to publish on; the process's shared one by default. */
  publisher?: Redis;
}

/** The message on the channel: one committed batch, consecutive seqs, in order. */
interface ChannelMessage {
  events: StoredEvent[];
}

/**
 * Stores events with the next sequence numbers and publishes them once committed.
 *
 * The seqs come from `deployments.last_seq`, bumped in the same transaction as the insert: the row
 * lock serialises writers (no collisions), and a rollback undoes the bump too (no gaps). Because
 * writers commit in seq order, a subscriber that sees seq n can rely on every seq < n being
 * readable from the database, which is how the SSE route fills gaps left by out-of-order publishes.
 *
 * Given a transaction, the events are published only after the caller commits it (and not at all
 * if it rolls back); the returned promise does not wait for that.
 */
export async function appendEvents(
  knex: Knex | Knex.Transaction,
  deploymentId: string,
  events: NewEvent[],
  options: PublishOptions = {},
): Promise<StoredEvent[]> {
  if (events.length === 0) return [];
  const write = async (trx: Knex.Transaction): Promise<StoredEvent[]> => {
    const [row] = (await trx('deployments').where({ id: deploymentId }).increment('lastSeq', events.length).returning('lastSeq')) as { lastSeq: number }[];
    if (!row) throw new NotFoundError('Deployment');
    const first = row.lastSeq - events.length + 1;
    const stored = events.map((e, i) => ({ seq: first + i, type: e.type, data: e.data }) as StoredEvent);
    await trx('deployment_events').insert(stored.map((e) => ({ deploymentId, seq: e.seq, type: e.type, data: JSON.stringify(e.data) })));
    return stored;
  };

  if (knex.isTransaction) {
    const trx = knex as Knex.Transaction;
    const stored = await write(trx);
    // A savepoint's promise settles at RELEASE; only the outermost commit makes the rows visible.
    let outer = trx;
    while (outer.parentTransaction) outer = outer.parentTransaction;
    outer.executionPromise.then(
      () => publish(deploymentId, stored, options.publisher),
      () => undefined, // rolled back: nothing was stored, so nothing to announce
    );
    return stored;
  }
  const stored = await knex.transaction(write);
  await publish(deploymentId, stored, options.publisher);
  return stored;
}

async function publish(deploymentId: string, events: StoredEvent[], publisher: Redis = sharedRedis()): Promise<void> {
  const message: ChannelMessage = { events };
  try {
    await publisher.publish(eventsChannel(deploymentId), JSON.stringify(message));
  } catch (err) {
    // The events are stored, so failing the caller would only make it write them twice. Live
    // clients notice the gap at the next event and read the missing ones from the database.
    logger().warn({ err, deploymentId, seqs: [events[0].seq, events[events.length - 1].seq] }, 'publishing deployment events failed');
  }
}

/** Stored events after `afterSeq`, in order; `type` narrows to status or log events. */
export async function listEvents(knex: Knex, deploymentId: string, afterSeq: number, limit: number, type?: NewEvent['type']): Promise<StoredEvent[]> {
  const query = knex('deployment_events').where({ deploymentId }).where('seq', '>', afterSeq).orderBy('seq').limit(limit).select('seq', 'type', 'data');
  if (type) query.where({ type });
  return (await query) as StoredEvent[];
}

// ---- log sink ----

export interface LogSink {
  /** Queues a line; never throws. */
  write(stream: LogStream, line: string): void;
  /**
   * Stores everything written so far. A write that fails because the database is unreachable is
   * retried (the lines wait, in order); only a failure that retrying cannot fix (the deployment
   * is gone) rejects, once.
   */
  flush(): Promise<void>;
  /**
   * Ignores further writes and stores what is left, retrying for up to closeTimeoutMs; never
   * rejects. A log line is never what decides a stage's outcome.
   */
  close(): Promise<void>;
}

export interface LogSinkOptions extends PublishOptions {
  knex: Knex;
  deploymentId: string;
  stage: string;
  /**
   * Values to cut out of every line (env var values). Read live: values pushed after the sink was
   * made are redacted from then on. Values shorter than 4 characters are ignored (they would
   * redact half the log).
   */
  secrets: string[];
  flushMs?: number;
  maxBatch?: number;
  maxLineBytes?: number;
  /** Lines kept while the database cannot be written; past it, lines are counted and said lost. */
  maxBuffered?: number;
  /** How long close() keeps retrying before it gives up on what is left. */
  closeTimeoutMs?: number;
  /** Told of each failed write that will be retried, and of lines given up on (for the worker's log). */
  onTrouble?: (event: { error: unknown; retryInMs?: number; lost?: number }) => void;
}

const RETRY_FIRST_MS = 200;
const RETRY_MAX_MS = 5_000;

/**
 * Batches a stage's log lines into appendEvents calls: every flushMs, or at once when maxBatch
 * lines are waiting. One batch is in flight at a time, so seqs follow the order of writes. A batch
 * is removed only once stored (a failed transaction stores nothing and allocates no seqs, so a
 * retry leaves no gap).
 */
export function createLogSink(options: LogSinkOptions): LogSink {
  const { knex, deploymentId, stage, flushMs = 100, maxBatch = 500, maxLineBytes = 8192, maxBuffered = 20_000, closeTimeoutMs = 60_000 } = options;
  const redact = createRedactor(options.secrets);
  let buffer: NewEvent[] = [];
  let timer: NodeJS.Timeout | undefined;
  let chain: Promise<void> = Promise.resolve();
  let drainQueued = false;
  let failure: { error: unknown } | undefined;
  let closed = false;
  /** Set when retrying must stop: the deployment is gone, or close() ran out of time. */
  let givenUp = false;
  let dropped = 0;
  let wakeRetry: (() => void) | undefined;

  const line = (stream: LogStream, text: string): NewEvent => ({ type: 'log', data: { stage, stream, line: text, at: new Date().toISOString() } });
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      t.unref();
      wakeRetry = () => {
        clearTimeout(t);
        resolve();
      };
    });

  const drain = async () => {
    drainQueued = false;
    let delay = RETRY_FIRST_MS;
    while (buffer.length > 0 && !givenUp) {
      const batch = buffer.slice(0, maxBatch);
      try {
        await appendEvents(knex, deploymentId, batch, { publisher: options.publisher });
        buffer = buffer.slice(batch.length);
        delay = RETRY_FIRST_MS;
        if (dropped > 0 && buffer.length < maxBuffered) {
          buffer.push(line('system', `${dropped} log lines were lost while the database could not be written.`));
          dropped = 0;
        }
      } catch (error) {
        if (error instanceof NotFoundError) {
          // The deployment is gone: nothing will ever take these lines.
          failure ??= { error };
          givenUp = true;
          break;
        }
        options.onTrouble?.({ error, retryInMs: delay });
        await pause(delay);
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
    }
    if (givenUp && buffer.length > 0) {
      options.onTrouble?.({ error: failure?.error, lost: buffer.length + dropped });
      buffer = [];
    }
  };
  const queueDrain = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (drainQueued) return chain;
    drainQueued = true;
    chain = chain.then(drain);
    return chain;
  };
  const flush = async () => {
    await queueDrain();
    if (!failure) return;
    const { error } = failure;
    failure = undefined;
    throw error;
  };

  return {
    write(stream, text) {
      if (closed || givenUp) return;
      try {
        if (buffer.length >= maxBuffered) {
          dropped++;
          return;
        }
        buffer.push(line(stream, cleanLine(text, redact, maxLineBytes)));
        if (buffer.length >= maxBatch) void queueDrain();
        else if (!timer) timer = setTimeout(queueDrain, flushMs).unref();
      } catch (error) {
        // Never reached in practice (the redactor does not throw); a line is not worth a stage.
        options.onTrouble?.({ error, lost: 1 });
      }
    },
    flush,
    async close() {
      closed = true;
      let timeout: NodeJS.Timeout | undefined;
      const outOfTime = new Promise<void>((resolve) => {
        timeout = setTimeout(() => {
          givenUp = true;
          wakeRetry?.();
          resolve();
        }, closeTimeoutMs);
        timeout.unref();
      });
      await Promise.race([flush().catch(() => undefined), outOfTime]);
      clearTimeout(timeout);
      await chain;
    },
  };
}

/** Redacts, then caps the line at maxBytes of UTF-8 (redacting first, so a cut never leaves half a secret). */
function cleanLine(raw: string, redact: Redactor, maxBytes: number): string {
  const text = String(raw).replace(/\r$/, '');
  // A multi-megabyte line is redacted only as far as the cap can reach, and as a stream, so the
  // place it stops at never falls inside a secret (a 44 KB value past a plain 32 KB slice would
  // have been cut in two, its first part no longer matching).
  const line = text.length > maxBytes * 4 ? redactedPrefix(redact, text, maxBytes * 4) : redact(text);
  if (line.length * 3 <= maxBytes || Buffer.byteLength(line) <= maxBytes) return line;
  const suffix = ` … [line cut at ${Math.round(maxBytes / 1024)} KB]`;
  // Cutting bytes may split a character; the decoder turns the half into U+FFFD, dropped here.
  return (
    Buffer.from(line)
      .subarray(0, maxBytes - Buffer.byteLength(suffix))
      .toString('utf8')
      .replace(/\uFFFD$/, '') + suffix
  );
}

// ---- subscriber side ----

export interface EventListener<T> {
  /** A batch published after commit; may arrive out of order relative to other writers' batches. */
  onBatch(batch: T): void;
  /** The subscription was re-established after a Redis reconnect: anything may have been missed. */
  onResync(): void;
}

interface Channel<T> {
  listeners: Set<EventListener<T>>;
  ready: Promise<unknown>;
}

/**
 * One Redis subscriber connection per process, multiplexing every deployment channel to any
 * number of listeners (SSE clients). A channel is SUBSCRIBEd for its first listener and
 * UNSUBSCRIBEd after its last; each message is decoded (and prepared, e.g. serialised as SSE) once,
 * whatever the number of listeners.
 */
export class EventHub<T> {
  private subscriber?: Redis;
  private readonly channels = new Map<string, Channel<T>>();

  constructor(
    private readonly connect: () => Redis,
    private readonly prepare: (events: StoredEvent[]) => T,
  ) {}

  /** Resolves once Redis confirms the subscription: from then on no published batch is missed. */
  async subscribe(deploymentId: string, listener: EventListener<T>): Promise<() => void> {
    const name = eventsChannel(deploymentId);
    let channel = this.channels.get(name);
    if (!channel) {
      // Commands on one connection run in order, so this SUBSCRIBE lands after any pending
      // UNSUBSCRIBE of the same channel by a listener that just left.
      channel = { listeners: new Set(), ready: this.connection().subscribe(name) };
      this.channels.set(name, channel);
    }
    channel.listeners.add(listener);
    const joined = channel;
    const unsubscribe = () => {
      if (!joined.listeners.delete(listener) || joined.listeners.size > 0) return;
      if (this.channels.get(name) === joined) this.channels.delete(name);
      this.subscriber?.unsubscribe(name).catch((err: unknown) => logger().warn({ err, channel: name }, 'unsubscribe failed'));
    };
    try {
      await joined.ready;
    } catch (err) {
      unsubscribe();
      throw err;
    }
    return unsubscribe;
  }

  /** Listeners across all channels, for tests and metrics. */
  get size(): number {
    let n = 0;
    for (const channel of this.channels.values()) n += channel.listeners.size;
    return n;
  }

  async close(): Promise<void> {
    this.channels.clear();
    const sub = this.subscriber;
    this.subscriber = undefined;
    if (sub) await sub.quit().catch(() => sub.disconnect());
  }

  private connection(): Redis {
    if (this.subscriber) return this.subscriber;
    const sub = this.connect();
    let connectedBefore = false;
    sub.on('error', (err: unknown) => logger().warn({ err }, 'deployment events subscriber error'));
    sub.on('ready', () => {
      if (connectedBefore) this.resubscribed(sub);
      connectedBefore = true;
    });
    sub.on('message', (name: string, text: string) => this.dispatch(name, text));
    this.subscriber = sub;
    return sub;
  }

  private dispatch(name: string, text: string): void {
    const channel = this.channels.get(name);
    if (!channel) return;
    let batch: T;
    try {
      batch = this.prepare((JSON.parse(text) as ChannelMessage).events);
    } catch (err) {
      logger().error({ err, channel: name }, 'undecodable deployment events message');
      return;
    }
    for (const listener of channel.listeners) listener.onBatch(batch);
  }

  /**
   * After a reconnect ioredis re-subscribes by itself, but whatever was published meanwhile is
   * lost. Our own SUBSCRIBE is answered after its, so once it resolves, listeners can re-read the
   * database knowing that anything later arrives live.
   */
  private resubscribed(sub: Redis): void {
    for (const [name, channel] of this.channels) {
      channel.ready = sub.subscribe(name);
      channel.ready.then(
        () => channel.listeners.forEach((l) => l.onResync()),
        (err: unknown) => logger().warn({ err, channel: name }, 'resubscribe failed'),
      );
    }
  }
}
