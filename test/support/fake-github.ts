// A fake GitHub for tests: one node:http server that speaks GitHub's wire protocol closely enough for
// the real octokit clients to talk to it (they derive the OAuth base URL from the API base URL when it
// is not github.com, so both live on the same origin). It records every request.
//
// Built from modules: each feature registers its routes with `fake.route()`. Today: the OAuth web
// flow (authorize, code exchange) and the user endpoints. Installation tokens, repositories, branches
// and statuses add their own module in the same way; a test can also override any route.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeEmail {
  email: string;
  primary: boolean;
  verified: boolean;
  visibility?: 'public' | 'private' | null;
}
export interface FakeUser {
  id: number;
  login: string;
  name: string | null;
  avatar_url: string | null;
  emails: FakeEmail[];
}

export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /** Parsed JSON or form body; the raw text is in `raw`. */
  body: Record<string, any>;
  raw: string;
  /** The body's bytes (git's protocol is binary). */
  bytes: Buffer;
  params: Record<string, string>;
}
export interface FakeResponse {
  status?: number;
  json?: unknown;
  text?: string;
  bytes?: Buffer;
  headers?: Record<string, string>;
}
export type Handler = (req: FakeRequest, fake: FakeGitHub) => FakeResponse | Promise<FakeResponse>;

interface Code {
  code: string;
  userId: number;
  clientId: string;
  redirectUri: string | null;
  expiresAt: number;
}

export const DOCS = 'https://docs.github.com/rest';
export const notFound = (): FakeResponse => ({ status: 404, json: { message: 'Not Found', documentation_url: DOCS, status: '404' } });
const badCredentials = (): FakeResponse => ({ status: 401, json: { message: 'Bad credentials', documentation_url: DOCS, status: '401' } });

export interface FakeGitHubOptions {
  clientId?: string;
  clientSecret?: string;
  /** GitHub's codes last ten minutes. */
  codeTtlMs?: number;
  /** The fake's clock; tests move it to expire codes. */
  now?: () => number;
}

export class FakeGitHub {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly codeTtlMs: number;
  now: () => number;
  url = '';
  /** Every request, in order. */
  readonly requests: FakeRequest[] = [];
  readonly users = new Map<number, FakeUser>();
  readonly codes = new Map<string, Code>();
  /** User-to-server tokens (ghu_) and what they belong to. */
  readonly tokens = new Map<string, { userId: number; clientId: string }>();
  private readonly routes: { method: string; parts: string[]; handler: Handler }[] = [];
  /** What modules forget on reset(). */
  readonly resetHooks: (() => void)[] = [];
  private server?: Server;
  private nextId = 1000;

  constructor(options: FakeGitHubOptions = {}) {
    this.clientId = options.clientId ?? 'Iv1.fake0client0id';
    this.clientSecret = options.clientSecret ?? `fake-secret-${randomBytes(12).toString('hex')}`;
    this.codeTtlMs = options.codeTtlMs ?? 10 * 60 * 1000;
    this.now = options.now ?? Date.now;
    oauthModule(this);
    userModule(this);
  }

  static async start(options: FakeGitHubOptions = {}): Promise<FakeGitHub> {
    const fake = new FakeGitHub(options);
    await fake.listen();
    return fake;
  }

  /** Forgets users, codes, tokens and recorded requests; routes stay. */
  reset(): void {
    for (const m of [this.users, this.codes, this.tokens]) m.clear();
    this.requests.length = 0;
    for (const hook of this.resetHooks) hook();
  }

  /** Registers a route; `:name` segments become params. Later registrations win, so a test can override
   * one, and undo that with the function returned. */
  route(method: string, pattern: string, handler: Handler): () => void {
    const entry = { method, parts: pattern.split('/'), handler };
    this.routes.unshift(entry);
    return () => {
      this.routes.splice(this.routes.indexOf(entry), 1);
    };
  }

  addUser(user: Partial<FakeUser> & { login: string }): FakeUser {
    const u: FakeUser = { id: user.id ?? this.nextId++, name: null, avatar_url: null, emails: [], ...user };
    this.users.set(u.id, u);
    return u;
  }

  user(loginOrId: string | number): FakeUser {
    const u =
      typeof loginOrId === 'number' ? this.users.get(loginOrId) : [...this.users.values()].find((x) => x.login.toLowerCase() === loginOrId.toLowerCase());
    if (!u) throw new Error(`fake GitHub has no user ${loginOrId}`);
    return u;
  }

  /** What GitHub does when the user approves the app on the authorize page: a fresh single-use code. */
  issueCode(loginOrId: string | number, { clientId = this.clientId, redirectUri = null as string | null } = {}): string {
    const code = randomBytes(10).toString('hex');
    this.codes.set(code, { code, userId: this.user(loginOrId).id, clientId, redirectUri, expiresAt: this.now() + this.codeTtlMs });
    return code;
  }

  /**
   * The browser's visit to an authorize URL the app redirected to, as `login` (signed in at GitHub):
   * returns where GitHub sends the browser back, with a code, or with error=access_denied if denied.
   */
  authorize(authorizeUrl: string, login: string, { deny = false } = {}): URL {
    const url = new URL(authorizeUrl);
    if (url.origin !== this.url || url.pathname !== '/login/oauth/authorize') throw new Error(`not an authorize URL of this fake: ${authorizeUrl}`);
    const clientId = url.searchParams.get('client_id');
    if (clientId !== this.clientId) throw new Error(`authorize: unknown client_id ${clientId}`);
    const redirectUri = url.searchParams.get('redirect_uri');
    if (!redirectUri) throw new Error('authorize: no redirect_uri (the fake has no registered callback URL)');
    const back = new URL(redirectUri);
    if (deny) {
      back.searchParams.set('error', 'access_denied');
      back.searchParams.set('error_description', 'The user has denied your application access.');
      back.searchParams.set('error_uri', 'https://docs.github.com/apps/troubleshooting-authorization-request-errors/#access-denied');
    } else {
      back.searchParams.set('code', this.issueCode(login, { clientId, redirectUri }));
    }
    const state = url.searchParams.get('state');
    if (state !== null) back.searchParams.set('state', state);
    return back;
  }

  /** The user a request's `authorization: token …` / `Bearer …` header belongs to, if any. */
  userOf(req: FakeRequest): FakeUser | undefined {
    const m = /^(?:token|bearer)\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const t = m ? this.tokens.get(m[1]) : undefined;
    return t ? this.users.get(t.userId) : undefined;
  }

  /** Requests matching a method and path, e.g. `fake.calls('POST', '/login/oauth/access_token')`. */
  calls(method: string, path: string): FakeRequest[] {
    return this.requests.filter((r) => r.method === method && r.path === path);
  }

  async listen(): Promise<void> {
    this.server = createServer((req, res) => {
      this.handle(req).then(
        (out) => {
          const headers: Record<string, string> = { ...out.headers };
          let payload: string | Buffer = out.bytes ?? out.text ?? '';
          if (out.json !== undefined) {
            headers['content-type'] ??= 'application/json; charset=utf-8';
            payload = JSON.stringify(out.json);
          }
          res.writeHead(out.status ?? 200, headers).end(payload);
        },
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`fake GitHub: ${err.stack}`),
      );
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    await new Promise<void>((resolve) => {
      this.server!.close(() => resolve());
      this.server!.closeAllConnections();
    });
  }

  private async handle(incoming: IncomingMessage): Promise<FakeResponse> {
    const chunks: Buffer[] = [];
    for await (const chunk of incoming) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    const raw = bytes.toString('utf8');
    const url = new URL(incoming.url ?? '/', 'http://fake');
    const type = incoming.headers['content-type'] ?? '';
    let body: Record<string, any> = {};
    if (raw && type.includes('json')) body = JSON.parse(raw);
    else if (raw && !type.startsWith('application/x-git-')) body = Object.fromEntries(new URLSearchParams(raw));
    const req: FakeRequest = {
      method: incoming.method ?? 'GET',
      path: url.pathname,
      query: url.searchParams,
      headers: incoming.headers,
      body,
      raw,
      bytes,
      params: {},
    };
    this.requests.push(req);
    const parts = req.path.split('/');
    for (const r of this.routes) {
      if (r.method !== req.method || r.parts.length !== parts.length) continue;
      const params: Record<string, string> = {};
      if (r.parts.every((p, i) => (p.startsWith(':') ? ((params[p.slice(1)] = decodeURIComponent(parts[i])), true) : p === parts[i]))) {
        return r.handler({ ...req, params }, this);
      }
    }
    return notFound();
  }
}

/** Requires a user token; answers 401 like GitHub otherwise. */
export function withUser(handler: (req: FakeRequest, user: FakeUser, fake: FakeGitHub) => FakeResponse | Promise<FakeResponse>): Handler {
  return (req, fake) => {
    const user = fake.userOf(req);
    return user ? handler(req, user, fake) : badCredentials();
  };
}

/** POST /login/oauth/access_token: GitHub answers 200 with {error} for bad codes and credentials. */
function oauthModule(fake: FakeGitHub): void {
  fake.route('POST', '/login/oauth/access_token', (req) => {
    const p = { ...Object.fromEntries(req.query), ...req.body } as Record<string, string | undefined>;
    const reply = (data: Record<string, unknown>): FakeResponse =>
      /application\/json/.test(req.headers.accept ?? '')
        ? { json: data }
        : {
            text: new URLSearchParams(data as Record<string, string>).toString(),
            headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
          };
    const error = (code: string, description: string, anchor: string) =>
      reply({
        error: code,
        error_description: description,
        error_uri: `https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#${anchor}`,
      });
    if (p.client_id !== fake.clientId || p.client_secret !== fake.clientSecret) {
      return error('incorrect_client_credentials', 'The client_id and/or client_secret passed are incorrect.', 'incorrect-client-credentials');
    }
    const code = p.code ? fake.codes.get(p.code) : undefined;
    if (code) fake.codes.delete(code.code); // single use, whatever happens next
    if (!code || code.clientId !== p.client_id || code.expiresAt <= fake.now()) {
      return error('bad_verification_code', 'The code passed is incorrect or expired.', 'bad-verification-code');
    }
    if (p.redirect_uri !== undefined && code.redirectUri !== null && p.redirect_uri !== code.redirectUri) {
      return error('redirect_uri_mismatch', 'The redirect_uri MUST match the registered callback URL for this application.', 'redirect-uri-mismatch');
    }
    const token = `ghu_${randomBytes(18).toString('base64url')}`;
    fake.tokens.set(token, { userId: code.userId, clientId: code.clientId });
    return reply({
      access_token: token,
      expires_in: 28800,
      refresh_token: `ghr_${randomBytes(30).toString('base64url')}`,
      refresh_token_expires_in: 15897600,
      token_type: 'bearer',
      scope: '',
    });
  });
}

function userModule(fake: FakeGitHub): void {
  fake.route(
    'GET',
    '/user',
    withUser((_req, u) => ({
      json: {
        login: u.login,
        id: u.id,
        node_id: `U_${u.id}`,
        avatar_url: u.avatar_url,
        html_url: `https://github.com/${u.login}`,
        type: 'User',
        site_admin: false,
        name: u.name,
        email: u.emails.find((e) => e.primary && e.visibility === 'public')?.email ?? null,
      },
    })),
  );
  fake.route(
    'GET',
    '/user/emails',
    withUser((_req, u) => ({
      json: u.emails.map((e) => ({ email: e.email, primary: e.primary, verified: e.verified, visibility: e.visibility ?? (e.primary ? 'private' : null) })),
    })),
  );
}
