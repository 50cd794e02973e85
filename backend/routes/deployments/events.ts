// A deployment's progress, live: GET /deployments/:id/events as Server-Sent Events, and the same
// log lines as JSON pages at GET /deployments/:id/logs.
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import Router from '@koa/router';
import type { Context } from 'koa';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { z } from 'zod';
import { deploymentAccess } from '../../queries/deployment-access.ts';
import { EventHub, listEvents, type EventListener, type LogData, type StoredEvent } from '../../deployments/events.ts';
import { isTerminal } from '../../deployments/pipeline.ts';
import { authorize } from '../../policies/index.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { ValidationError } from '../../lib/errors.ts';
import type { Deps } from '../deps.ts';
import { acquireStreamSlot, watchAccess } from './stream-guard.ts';

const seq = z.coerce
  .number()
  .int()
  .min(0)
  .max(2 ** 31 - 1);
const id = z.uuid('is not a deployment id');
// EventSource polyfills that cannot set headers pass the resume point as ?lastEventId=.
const eventsSchema = { params: z.object({ id }), query: z.object({ lastEventId: seq.optional() }) };
const logsSchema = { params: z.object({ id }), query: z.object({ after: seq.default(0), limit: z.coerce.number().int().min(1).max(1000).default(100) }) };

export interface EventStreamOptions {
  /** Comment sent when nothing else is, so proxies keep the connection open. */
  heartbeatMs?: number;
  /** A client this far behind is disconnected (it resumes with Last-Event-ID) instead of growing our memory. */
  maxBufferedBytes?: number;
  /**
   * How often a stream re-checks that its viewer may still read the deployment (still a member,
   * still signed in, token not revoked). Invalidation messages make it re-check at once; this
   * bounds how long a missed message (Redis down, direct SQL) can leave a stream open.
   */
  accessCheckMs?: number;
  /** Open streams one user may hold across every api process; one more is a 429. */
  maxStreamsPerUser?: number;
}

export const ACCESS_CHECK_MS = 15_000;
export const MAX_STREAMS_PER_USER = 20;

const REPLAY_PAGE = 500;
const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);
const END_FRAME = 'event: end\ndata: {}\n\n';
// The same end event (EventSource must not reconnect), saying why the viewer may watch no more.
const REVOKED_FRAME = `event: end\ndata: ${JSON.stringify({ reason: 'access_revoked', message: 'You may no longer see this deployment: you were signed out, your API token was revoked, or you left its team.' })}\n\n`;

/** One published batch, serialised once for every client: the frames, and all of them as bytes. */
interface Batch {
  first: number;
  last: number;
  frames: Frame[];
  bytes: Buffer;
  hasTerminal: boolean;
}
interface Frame {
  seq: number;
  text: string;
  terminal: boolean;
}

const toFrame = (e: StoredEvent): Frame => ({
  seq: e.seq,
  // JSON escapes CR and LF, so the data always fits on one `data:` line.
  text: `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`,
  terminal: e.type === 'status' && isTerminal(e.data.status),
});

function toBatch(events: StoredEvent[]): Batch {
  const frames = events.map(toFrame);
  return {
    first: frames[0].seq,
    last: frames[frames.length - 1].seq,
    frames,
    bytes: Buffer.from(frames.map((f) => f.text).join('')),
    hasTerminal: frames.some((f) => f.terminal),
  };
}

/**
 * One client's stream. The order of operations is what makes resuming exact:
 *   1. subscribe to the live channel first; batches that arrive are buffered while syncing;
 *   2. replay everything after Last-Event-ID from the database, in pages;
 *   3. then deliver the buffered batches, skipping seqs already sent.
 * A live batch that does not follow the last seq sent (another writer's publish overtook it, or
 * Redis dropped one) sends the stream back to step 2: appendEvents guarantees every lower seq is
 * committed by then. Duplicates are dropped by seq.
 */
class EventStream implements EventListener<Batch> {
  private lastSent: number;
  private pending: Batch[] = [];
  private syncing = true;
  private syncRunning = false;
  private syncAgain = false;
  /** Set while buffered batches are delivered right after a sync. */
  private draining = false;
  private retry?: NodeJS.Timeout;
  private closed = false;
  private heartbeat?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  private readonly finished: Promise<void>;
  private resolveFinished!: () => void;

  constructor(
    private readonly res: ServerResponse,
    private readonly knex: Knex,
    private readonly deploymentId: string,
    lastEventId: number,
    /** Whether a terminal status ends the stream; false when replaying a finished deployment whole. */
    private readonly stopAtTerminal: boolean,
    private readonly options: Required<EventStreamOptions>,
    private readonly log?: Logger,
  ) {
    this.lastSent = lastEventId;
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
  }

  /** Runs until the stream ends or the client goes away. */
  async run(unsubscribe: (() => void) | undefined): Promise<void> {
    this.unsubscribe = unsubscribe;
    const { res } = this;
    res.on('close', () => this.close());
    // A write racing a disconnect reports here; the stream is over either way.
    res.on('error', () => this.close());
    if (res.destroyed) this.close();
    if (this.closed) return;
    res.socket?.setNoDelay(true);
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      // nginx and Fly's proxy would otherwise hold lines back until a buffer fills.
      'X-Accel-Buffering': 'no',
    });
    // Sends the headers now, and tells EventSource how soon to reconnect.
    res.write('retry: 2000\n\n');
    this.heartbeat = setInterval(() => res.write(': ping\n\n'), this.options.heartbeatMs);
    await this.sync();
    if (!this.stopAtTerminal) this.end();
    return this.finished;
  }

  onBatch(batch: Batch): void {
    if (this.closed) return;
    if (this.syncing) {
      this.pending.push(batch);
      return;
    }
    if (batch.last <= this.lastSent) return;
    if (batch.first > this.lastSent + 1) {
      this.pending.push(batch);
      // A gap the database could not fill just now cannot happen while every write goes through
      // appendEvents; should it anyway, retry calmly instead of querying in a tight loop.
      if (!this.draining) void this.sync();
      else
        this.retry ??= setTimeout(() => {
          this.retry = undefined;
          void this.sync();
        }, 500);
      return;
    }
    if (this.tooFarBehind()) return;
    // The common case: the batch follows on exactly; every client gets the same bytes.
    if (batch.first === this.lastSent + 1 && !(this.stopAtTerminal && batch.hasTerminal)) {
      this.res.write(batch.bytes);
      this.lastSent = batch.last;
      return;
    }
    this.send(batch.frames);
  }

  onResync(): void {
    void this.sync();
  }

  /** Reads from the database whatever follows lastSent, then delivers the buffered live batches. */
  private async sync(): Promise<void> {
    if (this.closed) return;
    if (this.syncRunning) {
      this.syncAgain = true;
      return;
    }
    this.syncing = this.syncRunning = true;
    try {
      do {
        this.syncAgain = false;
        await this.replay();
      } while (this.syncAgain && !this.closed);
    } catch (err) {
      // The client reconnects with Last-Event-ID and we try again then.
      this.log?.error({ err, deploymentId: this.deploymentId }, 'replaying deployment events failed');
      this.disconnect();
    } finally {
      this.syncRunning = false;
    }
    this.syncing = false;
    const buffered = this.pending;
    this.pending = [];
    this.draining = true;
    for (const batch of buffered) this.onBatch(batch);
    this.draining = false;
  }

  private async replay(): Promise<void> {
    for (;;) {
      const events = await listEvents(this.knex, this.deploymentId, this.lastSent, REPLAY_PAGE);
      if (this.closed || events.length === 0) return;
      this.send(events.map(toFrame));
      // A long log must not pile up in memory faster than the client reads it; and live delivery
      // starts from an empty buffer, so tooFarBehind() only ever sees live lag.
      if (this.res.writableNeedDrain && !this.closed) await Promise.race([once(this.res, 'drain'), this.finished]);
      if (this.closed || events.length < REPLAY_PAGE) return;
    }
  }

  /** Sends the frames after lastSent, in one write, stopping after a terminal status. */
  private send(frames: Frame[]): void {
    let text = '';
    let ended = false;
    for (const frame of frames) {
      if (frame.seq <= this.lastSent) continue;
      text += frame.text;
      this.lastSent = frame.seq;
      if (this.stopAtTerminal && frame.terminal) {
        ended = true;
        break;
      }
    }
    if (text) this.res.write(text);
    if (ended) this.end();
  }

  /**
   * Measured before a live write, so one large batch never counts against a client; only data
   * still unsent when the next batch comes does. Such a client resumes from the database.
   */
  private tooFarBehind(): boolean {
    if (this.res.writableLength <= this.options.maxBufferedBytes) return false;
    this.log?.warn({ deploymentId: this.deploymentId, buffered: this.res.writableLength }, 'event stream client too slow; disconnecting it');
    this.res.destroy();
    return true;
  }

  /** Ends the response without the end event, so EventSource reconnects (to another api process) and resumes. */
  disconnect(): void {
    if (this.closed) return;
    this.res.end();
    this.close();
  }

  private end(): void {
    if (this.closed) return;
    this.res.end(END_FRAME);
    this.close();
  }

  /** The viewer lost access: ends the stream for good, whatever was being replayed or buffered. */
  revoke(): void {
    if (this.closed) return;
    this.res.end(REVOKED_FRAME);
    this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.retry);
    this.unsubscribe?.();
    this.pending = [];
    this.resolveFinished();
  }
}

/** Last-Event-ID (what EventSource sends on reconnect) wins over ?lastEventId=. */
function resumePoint(header: string, query: number | undefined): number {
  if (!header) return query ?? 0;
  const parsed = seq.safeParse(header.trim());
  if (!parsed.success || !/^\d+$/.test(header.trim())) {
    throw new ValidationError('Last-Event-ID: must be the id of an event this stream sent', [
      { field: 'headers.last-event-id', message: 'must be a whole number' },
    ]);
  }
  return parsed.data;
}

/** What closeEventStreams() must close: every router's open streams and its hub. */
const running = new Set<{ close(): Promise<void> }>();

/**
 * For a graceful shutdown: server.close() waits for every open connection, and event streams
 * never end on their own. Disconnected clients resume elsewhere with Last-Event-ID.
 */
export async function closeEventStreams(): Promise<void> {
  await Promise.all([...running].map((r) => r.close()));
}

export function deploymentEventRoutes({ knex, redis }: Pick<Deps, 'knex' | 'redis'>, options: EventStreamOptions = {}): Router {
  const settings: Required<EventStreamOptions> = {
    heartbeatMs: options.heartbeatMs ?? 15_000,
    maxBufferedBytes: options.maxBufferedBytes ?? 1024 * 1024,
    accessCheckMs: options.accessCheckMs ?? ACCESS_CHECK_MS,
    maxStreamsPerUser: options.maxStreamsPerUser ?? MAX_STREAMS_PER_USER,
  };
  // A place outlives its last refresh (one per access check) by a margin, so a busy process keeps it.
  const slotTtlMs = Math.max(3 * settings.accessCheckMs, 5000);
  // One subscriber connection for every stream this process serves.
  // Its SUBSCRIBE can go out while ioredis's handshake (CLIENT SETINFO, then the INFO ready check)
  // is still under way, and Redis then refuses the handshake's commands on a subscribed connection:
  // ioredis 5.8.2+ rejects the first streams with "Connection in subscriber mode" (redis/ioredis#2037,
  // fixed in 6.0). A subscriber needs neither command.
  const hub = new EventHub(() => redis.duplicate({ enableReadyCheck: false, disableClientInfo: true, connectionName: 'rhone-deployment-events' }), toBatch);
  const streams = new Set<EventStream>();
  running.add({
    close: async () => {
      for (const stream of streams) stream.disconnect();
      await hub.close();
    },
  });
  const router = new Router();

  router.get('/deployments/:id/events', auth(), validate(eventsSchema), async (ctx: Context) => {
    const { params, query } = inputOf(ctx, eventsSchema);
    const actor = requireActor(ctx);
    const { deployment, team, role } = await deploymentAccess(actor, params.id);
    authorize(role, 'deployment:read');
    const after = resumePoint(ctx.get('Last-Event-ID'), query.lastEventId);
    const log = ctx.state.log as Logger | undefined;
    // Taken before any byte is written, so that a refusal is an ordinary JSON 429.
    const slot = await acquireStreamSlot(redis, actor.user.id, settings.maxStreamsPerUser, slotTtlMs, log);
    // A finished deployment has nothing more to say: replay it and end, no subscription needed.
    const live = !isTerminal(deployment.status);
    const stream = new EventStream(ctx.res, knex, deployment.id, after, live, settings, log);
    let unsubscribe: (() => void) | undefined;
    try {
      unsubscribe = live ? await hub.subscribe(deployment.id, stream) : undefined;
    } catch (err) {
      await slot.release();
      throw err;
    }
    // From here on we write to the socket ourselves; Koa must not answer as well.
    ctx.status = 200;
    ctx.respond = false;
    // Closing the tab often resets the connection: the normal end of a stream, not an error to print.
    const onerror = ctx.onerror.bind(ctx);
    ctx.onerror = (err) => {
      if (!CLIENT_GONE.has((err as NodeJS.ErrnoException | null)?.code ?? '')) onerror(err);
    };
    // Access is checked again while the stream runs: once at once (a removal may have landed since
    // deploymentAccess), then on every relevant invalidation and every accessCheckMs. Started
    // right before run(), whose headers go out before any check can answer. The watch only ever
    // ends the stream; it never touches the order of what is sent.
    const watch = watchAccess({
      knex,
      actor,
      teamId: team.id,
      everyMs: settings.accessCheckMs,
      onLost: () => stream.revoke(),
      // Not knowing is not a reason to keep streaming: disconnect, and the reconnect re-authenticates.
      onError: (err) => {
        log?.error({ err, deploymentId: deployment.id }, 'could not re-check access to a deployment event stream; disconnecting it');
        stream.disconnect();
      },
      onTick: () => slot.refresh(),
    });
    streams.add(stream);
    try {
      await stream.run(unsubscribe);
    } finally {
      watch.stop();
      streams.delete(stream);
      await slot.release();
    }
  });

  router.get('/deployments/:id/logs', auth(), validate(logsSchema), async (ctx: Context) => {
    const { params, query } = inputOf(ctx, logsSchema);
    const { deployment, role } = await deploymentAccess(requireActor(ctx), params.id);
    authorize(role, 'deployment:read');
    const rows = await listEvents(knex, deployment.id, query.after, query.limit + 1, 'log');
    const items = rows.slice(0, query.limit).map((e) => {
      const { stage, stream, line, at } = e.data as LogData;
      return { seq: e.seq, stage, stream, line, at };
    });
    // `next` is the `after` of the next page; null once caught up (a running deploy may add more).
    ctx.body = { items, next: rows.length > query.limit ? items[items.length - 1].seq : null };
  });

  return router;
}
