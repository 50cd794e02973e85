// A deployment's live progress: its log lines and status changes from
// GET /api/deployments/:id/events. Every event carries its sequence number as the SSE id, so a
// reconnect (the browser's own, with Last-Event-ID, or ours with ?lastEventId=) resumes with no
// gap, and anything at or below the last id seen is dropped: no line is ever shown twice.
// Lines live in a plain array (100,000 reactive objects would be slow); `version` says it changed.
import { shallowRef, ref } from 'vue';
import type { DeploymentStatus, LogLine, Stage } from './types.ts';

export interface StatusEvent {
  seq: number;
  status: DeploymentStatus;
  stage: Stage | null;
  reason?: string | null;
}

/** The part of EventSource the feed uses, so tests can drive it. */
export interface EventSourceLike {
  readyState: number;
  onerror: ((ev: Event) => void) | null;
  addEventListener(type: string, listener: (ev: MessageEvent) => void): void;
  close(): void;
}
export type EventSourceFactory = (url: string) => EventSourceLike;

/** A page of the log as GET /api/deployments/:id/logs?after=&limit= answers it. */
export type HistoryPage = { items: LogLine[]; next: number | null };
export type HistoryLoader = (after: number) => Promise<HistoryPage>;

const CLOSED = 2;

export class DeploymentFeed {
  readonly lines: LogLine[] = [];
  /** Bumped (at most once per animation frame) whenever lines were added. */
  readonly version = ref(0);
  readonly status = shallowRef<StatusEvent | null>(null);
  readonly ended = ref(false);
  readonly connected = ref(false);
  lastId = 0;
  private source: EventSourceLike | null = null;
  private cancelRetry: (() => void) | null = null;
  private retries = 0;
  private flushScheduled = false;
  private closed = false;

  private readonly open: EventSourceFactory;
  private readonly onStatus: (e: StatusEvent) => void;
  private readonly schedule: (fn: () => void) => void;
  private readonly history?: HistoryLoader;
  private readonly later: (fn: () => void, ms: number) => () => void;

  constructor(
    private readonly deploymentId: string,
    options: {
      open?: EventSourceFactory;
      onStatus?: (e: StatusEvent) => void;
      /** When to redraw after lines came; tests redraw at once. */
      schedule?: (fn: () => void) => void;
      /**
       * The lines so far, in pages of a thousand, before the stream opens after the last of them:
       * a long log arrives several times faster as JSON pages than as one event per line.
       */
      history?: HistoryLoader;
      /** Runs fn after ms and returns its cancel (setTimeout); tests run it when they say. */
      later?: (fn: () => void, ms: number) => () => void;
    } = {},
  ) {
    this.open = options.open ?? ((url) => new EventSource(url, { withCredentials: true }));
    this.onStatus = options.onStatus ?? (() => {});
    // At most ten redraws a second: a replay of 100,000 lines arrives in a few seconds, and each
    // redraw recomputes the viewer's rows; live lines still show within 100 ms.
    this.schedule = options.schedule ?? ((fn) => setTimeout(fn, 100));
    this.history = options.history;
    this.later =
      options.later ??
      ((fn, ms) => {
        const timer = setTimeout(fn, ms);
        return () => clearTimeout(timer);
      });
  }

  url(): string {
    const q = this.lastId > 0 ? `?lastEventId=${this.lastId}` : '';
    return `/api/deployments/${encodeURIComponent(this.deploymentId)}/events${q}`;
  }

  start(): void {
    if (this.closed || this.ended.value) return;
    if (this.history && this.lastId === 0) {
      void this.loadHistory().then(() => this.connect());
      return;
    }
    this.connect();
  }

  private async loadHistory(): Promise<void> {
    try {
      for (;;) {
        const page = await this.history!(this.lastId);
        for (const line of page.items) {
          if (line.seq <= this.lastId) continue;
          this.lines.push(line);
          this.lastId = line.seq;
        }
        this.changed();
        if (page.next === null || page.items.length === 0 || this.closed) return;
      }
    } catch {
      // The stream replays whatever the pages did not bring.
    }
  }

  private connect(): void {
    if (this.closed || this.ended.value) return;
    const source = this.open(this.url());
    this.source = source;
    source.addEventListener('open', () => {
      this.connected.value = true;
      this.retries = 0;
    });
    source.addEventListener('log', (ev) => this.onLog(ev));
    source.addEventListener('status', (ev) => this.onStatusEvent(ev));
    source.addEventListener('end', () => {
      this.ended.value = true;
      this.stop();
    });
    source.onerror = () => {
      this.connected.value = false;
      // The browser retries by itself while readyState is CONNECTING. CLOSED means it gave up
      // (an HTTP error, say): reconnect ourselves, with growing pauses, from the last id seen.
      if (source.readyState === CLOSED && !this.closed && !this.ended.value) {
        this.source = null;
        const wait = Math.min(30_000, 500 * 2 ** this.retries++);
        this.cancelRetry = this.later(() => this.connect(), wait);
      }
    };
  }

  /** Accepts an event only once, in order. */
  private accept(ev: MessageEvent): boolean {
    const seq = Number(ev.lastEventId);
    if (!Number.isInteger(seq) || seq <= this.lastId) return false;
    this.lastId = seq;
    return true;
  }

  private onLog(ev: MessageEvent) {
    if (!this.accept(ev)) return;
    const data = JSON.parse(ev.data) as Omit<LogLine, 'seq'>;
    this.lines.push({ seq: this.lastId, ...data });
    this.changed();
  }

  /** Redraws soon, once for however many lines came meanwhile. */
  private changed() {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    this.schedule(() => {
      this.flushScheduled = false;
      this.version.value++;
    });
  }

  private onStatusEvent(ev: MessageEvent) {
    if (!this.accept(ev)) return;
    const data = JSON.parse(ev.data) as Omit<StatusEvent, 'seq'>;
    const event = { seq: this.lastId, ...data };
    this.status.value = event;
    this.onStatus(event);
  }

  private stop() {
    this.source?.close();
    this.source = null;
    this.connected.value = false;
    this.cancelRetry?.();
    this.cancelRetry = null;
    this.version.value++;
  }

  close(): void {
    this.closed = true;
    this.stop();
  }
}
