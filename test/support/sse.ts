// A small Server-Sent Events client over fetch's body stream, parsing the way EventSource does
// (fields, comments, CRLF/LF, multi-line data), but without reconnecting on its own: the tests
// reconnect explicitly, with the Last-Event-ID they choose.
export interface SseMessage {
  id: string | undefined;
  event: string;
  data: string;
}

export interface SseOptions {
  headers?: Record<string, string>;
  lastEventId?: string;
}

type Waiter = { check: () => boolean; resolve: () => void };

export class SseClient {
  readonly messages: SseMessage[] = [];
  readonly comments: string[] = [];
  status = 0;
  headers = new Headers();
  /** Resolves when the server closes the stream (or we do). */
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  private isClosed = false;
  private readonly abort = new AbortController();
  private waiters: Waiter[] = [];
  private retryMs: number | undefined;

  private constructor() {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  /** Connects and resolves once the response headers are in; the body is read in the background. */
  static async connect(url: string, options: SseOptions = {}): Promise<SseClient> {
    const client = new SseClient();
    const headers: Record<string, string> = { accept: 'text/event-stream', ...options.headers };
    if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId;
    const res = await fetch(url, { headers, signal: client.abort.signal });
    client.status = res.status;
    client.headers = res.headers;
    if (!res.ok || !res.body) {
      client.body = await res.text();
      client.finish();
      return client;
    }
    void client.read(res.body);
    return client;
  }

  /** The body of a non-200 answer. */
  body = '';

  get done(): boolean {
    return this.isClosed;
  }

  get retry(): number | undefined {
    return this.retryMs;
  }

  /** Messages other than `end`, the id as a number. */
  get events(): (SseMessage & { seq: number })[] {
    return this.messages.filter((m) => m.event !== 'end').map((m) => ({ ...m, seq: Number(m.id) }));
  }

  lastId(): string | undefined {
    return [...this.messages].reverse().find((m) => m.id !== undefined)?.id;
  }

  close(): void {
    this.abort.abort();
    this.finish();
  }

  /** Waits until `predicate` holds, failing after `timeoutMs` with what was received so far. */
  waitFor(predicate: (c: SseClient) => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    if (predicate(this)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; got ${this.messages.length} messages, last ids ${this.messages
              .slice(-5)
              .map((m) => m.id)
              .join(',')}, closed=${this.isClosed}`,
          ),
        );
      }, timeoutMs);
      const waiter: Waiter = {
        check: () => predicate(this),
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.waiters.push(waiter);
    });
  }

  waitForEvents(count: number, timeoutMs?: number): Promise<void> {
    return this.waitFor((c) => c.events.length >= count, timeoutMs, `${count} events`);
  }

  private notify(): void {
    this.waiters = this.waiters.filter((w) => {
      if (!w.check()) return true;
      w.resolve();
      return false;
    });
  }

  private finish(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.resolveClosed();
    this.notify();
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    let message: { id?: string; event?: string; data: string[] } = { data: [] };
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        // A line ends at CRLF, LF or CR; the last piece may be incomplete (a CR may yet be followed by LF).
        const lines = buffer.split(/\r\n|\n|\r(?!$)/);
        buffer = lines.pop() ?? '';
        for (const line of lines) {
          if (line === '') {
            if (message.data.length > 0) {
              this.messages.push({ id: message.id, event: message.event ?? 'message', data: message.data.join('\n') });
            }
            message = { data: [] };
            continue;
          }
          if (line.startsWith(':')) {
            this.comments.push(line.slice(1).trimStart());
            continue;
          }
          const colon = line.indexOf(':');
          const field = colon === -1 ? line : line.slice(0, colon);
          let value = colon === -1 ? '' : line.slice(colon + 1);
          if (value.startsWith(' ')) value = value.slice(1);
          if (field === 'data') message.data.push(value);
          else if (field === 'event') message.event = value;
          else if (field === 'id') message.id = value;
          else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Number(value);
        }
        this.notify();
      }
    } catch {
      // aborted by close(), or the connection dropped: either way the stream is over
    }
    this.finish();
  }
}
