// WebSocket clients that behave like a Vango page (examples/hello-node's page script): connect to
// /_vango/ws through the router, send "ping" (the app answers "pong <release>"), and on close
// reconnect after a backoff. Each one records how its connections ended (told to reconnect by the
// app's message before the close, or not) and how long it took from a close to being connected
// to a different release than the one that closed it.
import WebSocket from 'ws';

export const RECONNECT_MESSAGE = '{"type":"reconnect"}';

export interface Close {
  at: number;
  code: number;
  /** The app's reconnect message arrived before the close. */
  told: boolean;
  release: string | undefined;
}

export interface Reconnect {
  closedAt: number;
  from: string;
  to: string;
  /** From the close to the new connection's open (its 101). */
  ms: number;
}

class VangoClient {
  ws: WebSocket | undefined;
  release: string | undefined;
  readonly closes: Close[] = [];
  readonly reconnects: Reconnect[] = [];
  /** A close from release `from` still waiting for a connection to another release. */
  pending: { closedAt: number; from: string } | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly url: string,
    private readonly host: string,
    private readonly backoffMs: number,
    private readonly onChange: () => void,
  ) {}

  connect(): void {
    if (this.stopped) return;
    const ws = new WebSocket(this.url, { headers: { host: this.host } });
    this.ws = ws;
    let openedAt = 0;
    let told = false;
    let release: string | undefined;
    ws.on('open', () => {
      openedAt = Date.now();
      ws.send('ping');
    });
    ws.on('message', (data) => {
      const text = String(data);
      if (text === RECONNECT_MESSAGE) told = true;
      const pong = /^pong (.*)$/.exec(text);
      if (!pong) return;
      release = pong[1];
      this.release = release;
      if (this.pending && release !== this.pending.from) {
        this.reconnects.push({ closedAt: this.pending.closedAt, from: this.pending.from, to: release, ms: openedAt - this.pending.closedAt });
        this.pending = undefined;
      }
      this.onChange();
    });
    ws.on('error', () => undefined); // a close follows
    ws.on('close', (code) => {
      if (this.ws === ws) this.ws = undefined;
      this.release = undefined;
      // A connection that never opened (a 502/503 answer, a refused socket) is a failed attempt, not a close.
      if (openedAt > 0 && !this.stopped) {
        const at = Date.now();
        this.closes.push({ at, code, told, release });
        if (!this.pending && release !== undefined) this.pending = { closedAt: at, from: release };
      }
      this.onChange();
      if (!this.stopped) this.timer = setTimeout(() => this.connect(), this.backoffMs);
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close(1000);
    this.ws?.terminate();
  }
}

export class VangoClients {
  readonly clients: VangoClient[];
  private waiters: (() => void)[] = [];

  constructor(routerUrl: string, host: string, count: number, options: { backoffMs?: number } = {}) {
    const url = new URL('/_vango/ws', routerUrl.replace(/^http/, 'ws')).href;
    const changed = () => {
      const waiting = this.waiters;
      this.waiters = [];
      for (const w of waiting) w();
    };
    this.clients = Array.from({ length: count }, () => new VangoClient(url, host, options.backoffMs ?? 1000, changed));
  }

  start(): void {
    for (const c of this.clients) c.connect();
  }

  /** How many clients are connected to `release` now (their last pong said so). */
  on(release: string): number {
    return this.clients.filter((c) => c.ws && c.release === release).length;
  }

  /** Resolves once every client is connected to `release`; rejects after timeoutMs. */
  async allOn(release: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.on(release) < this.clients.length) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.on(release)} of ${this.clients.length} clients connected to ${release} after ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  closesSince(at: number): Close[] {
    return this.clients.flatMap((c) => c.closes.filter((x) => x.at >= at));
  }

  reconnectsSince(at: number): Reconnect[] {
    return this.clients.flatMap((c) => c.reconnects.filter((r) => r.closedAt >= at));
  }

  /** Clients closed since `at` that have not reached another release yet. */
  stranded(at: number): number {
    return this.clients.filter((c) => c.pending && c.pending.closedAt >= at).length;
  }

  stop(): void {
    for (const c of this.clients) c.stop();
  }
}
