// A real api on an ephemeral port and a small client that keeps cookies and sends the CSRF header
// the way the dashboard does.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type Koa from 'koa';
import { pino, type Logger } from 'pino';
import { getConfig, type Config } from '../backend/config.ts';
import { db } from '../backend/db.ts';
import { redis } from '../backend/redis.ts';
import { appCaches, closeApp, createApp } from '../backend/app.ts';
import type { RateLimits } from '../backend/middleware/rate-limit.ts';
import type { QueueContext } from '../jobs/queues.ts';

export interface TestServer {
  app: Koa;
  url: string;
  close(): Promise<void>;
}

export async function startTestServer(
  options: { config?: Partial<Config>; rateLimits?: RateLimits; log?: Logger; queues?: QueueContext } = {},
): Promise<TestServer> {
  const config = { ...getConfig(), ...options.config };
  const app = createApp({
    config,
    knex: db(),
    redis: redis(),
    log: options.log ?? pino({ level: 'silent' }),
    rateLimits: options.rateLimits ?? { signInPerMinute: 1000, writesPerMinute: 10_000 },
    queues: options.queues,
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  // Every test sees the api as production runs it: with its read caches serving.
  if (!(await appCaches(app)!.whenServing())) throw new Error('the cache invalidation subscriber did not subscribe within 5 s');
  return {
    app,
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await closeApp(app);
    },
  };
}

export interface Res<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export class Client {
  cookies = new Map<string, string>();
  token?: string;

  constructor(readonly base: string) {}

  withToken(token: string): Client {
    const c = new Client(this.base);
    c.token = token;
    return c;
  }

  async request<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Res<T>> {
    const h: Record<string, string> = { accept: 'application/json', ...headers };
    if (this.cookies.size > 0) h.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    // Over https the cookie carries the __Host- prefix (backend/lib/session.ts).
    const csrf = this.cookies.get('__Host-rhone_csrf') ?? this.cookies.get('rhone_csrf');
    if (csrf && !['GET', 'HEAD'].includes(method) && !('x-csrf-token' in headers)) h['x-csrf-token'] = csrf;
    if (this.token) h.authorization = `Bearer ${this.token}`;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
    const res = await fetch(this.base + path, { method, headers: h, body: payload, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      if (value === '' || /max-age=0|expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  }

  get<T = any>(path: string) {
    return this.request<T>('GET', path);
  }
  post<T = any>(path: string, body?: unknown) {
    return this.request<T>('POST', path, body ?? {});
  }
  put<T = any>(path: string, body?: unknown) {
    return this.request<T>('PUT', path, body);
  }
  patch<T = any>(path: string, body?: unknown) {
    return this.request<T>('PATCH', path, body);
  }
  delete<T = any>(path: string) {
    return this.request<T>('DELETE', path);
  }
}

/** Signs in through the real dev-login route and returns a client holding the session. */
export async function signedIn(base: string, login: string): Promise<Client> {
  const client = new Client(base);
  const res = await client.post('/auth/dev', { login });
  if (res.status !== 200 && res.status !== 201) throw new Error(`dev login failed: ${res.status} ${JSON.stringify(res.body)}`);
  return client;
}
