// A small HTTP layer for the local Machines API: a route table with :params, JSON bodies, Fly's
// ErrorResponse for every error, and the install's token required in Authorization (local/token.ts).
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { z } from 'zod';
import { ApiError, badRequest } from '../errors.ts';
import type { LocalLogger } from '../log.ts';
import { hostOf } from '../router.ts';
import { tokenMatches } from '../token.ts';

const BODY_LIMIT = 1024 * 1024;

export interface ApiRequest {
  method: string;
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: unknown;
  /** Aborted when the client goes away (a wait stops waiting). */
  signal: AbortSignal;
}

export interface Reply {
  status: number;
  body?: unknown;
  /** Sent as text/plain instead of JSON. */
  text?: string;
  headers?: Record<string, string>;
}

export type Handler = (req: ApiRequest) => Reply | Promise<Reply>;

interface Route {
  method: string;
  parts: string[];
  handler: Handler;
}

export class RouteTable {
  private readonly routes: Route[] = [];

  add(method: string, pattern: string, handler: Handler): this {
    this.routes.push({ method, parts: pattern.split('/').filter(Boolean), handler });
    return this;
  }

  find(method: string, path: string): { handler: Handler; params: Record<string, string> } | { allowed: string[] } | undefined {
    const segments = path.split('/').filter(Boolean);
    const allowed: string[] = [];
    for (const route of this.routes) {
      const params = match(route.parts, segments);
      if (!params) continue;
      if (route.method === method) return { handler: route.handler, params };
      allowed.push(route.method);
    }
    return allowed.length ? { allowed } : undefined;
  }
}

function match(parts: string[], segments: string[]): Record<string, string> | undefined {
  if (parts.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    if (parts[i].startsWith(':')) {
      try {
        params[parts[i].slice(1)] = decodeURIComponent(segments[i]);
      } catch {
        return undefined;
      }
    } else if (parts[i] !== segments[i]) return undefined;
  }
  return params;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > BODY_LIMIT) throw new ApiError(413, 'request body is larger than 1 MiB');
    chunks.push(chunk as Buffer);
  }
  const raw = Buffer.concat(chunks).toString('utf8').trim();
  if (raw === '') return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    throw badRequest('request body is not valid JSON');
  }
}

function send(res: ServerResponse, reply: Reply): void {
  const headers: Record<string, string> = { ...reply.headers };
  if (reply.text !== undefined) {
    res.writeHead(reply.status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
    res.end(reply.text);
  } else if (reply.body === undefined || reply.status === 204) {
    res.writeHead(reply.status, headers);
    res.end();
  } else {
    res.writeHead(reply.status, { 'content-type': 'application/json; charset=utf-8', ...headers });
    res.end(JSON.stringify(reply.body));
  }
}

export function errorReply(err: ApiError): Reply {
  return { status: err.httpStatus, body: { error: err.message, ...(err.code ? { status: err.code } : {}) } };
}

export interface ApiAccess {
  /** The only token accepted, as "Authorization: Bearer <token>". */
  token: string;
  /** Where it is kept, for the 401's message (never the token itself). */
  tokenFile: string;
}

/** The names this server answers to: loopback only, so a page rebound to 127.0.0.1 gets nothing. */
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Refuses a foreign Host and anything without the install's token, before any route runs. */
function checkAccess(req: IncomingMessage, access: ApiAccess): void {
  const host = hostOf(req.headers.host);
  if (!LOOPBACK_HOSTS.has(host)) {
    throw new ApiError(403, `host "${host}" is not allowed: the local Machines API answers only to localhost, 127.0.0.1 and [::1]`);
  }
  const header = req.headers.authorization?.trim();
  if (!header) throw new ApiError(401, `missing Authorization header: send "Bearer <token>" with the token in ${access.tokenFile}`);
  // Both schemes Fly takes: Bearer, and FlyV1 for macaroons (what backend/providers/fly/client.ts sends as issued).
  const match = /^(?:Bearer|FlyV1)\s+(\S+)$/i.exec(header);
  if (!match || !tokenMatches(match[1], access.token)) {
    throw new ApiError(401, `unauthorized: the Authorization token is not this local runtime's; Rhone's processes read it from ${access.tokenFile}`);
  }
}

export function createApiServer(routes: RouteTable, log: LocalLogger, access: ApiAccess): http.Server {
  return http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://local');
    const method = req.method ?? 'GET';
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    try {
      checkAccess(req, access);
      const found = routes.find(method, url.pathname);
      if (!found) throw new ApiError(404, `no such endpoint: ${method} ${url.pathname}`);
      if ('allowed' in found) throw new ApiError(405, `${method} is not allowed on ${url.pathname} (allowed: ${found.allowed.join(', ')})`);
      const body = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(method) ? await readJson(req) : undefined;
      const reply = await found.handler({
        method,
        path: url.pathname,
        params: found.params,
        query: url.searchParams,
        headers: req.headers,
        body,
        signal: abort.signal,
      });
      if (!res.destroyed) send(res, reply);
    } catch (err) {
      if (err instanceof ApiError) return send(res, errorReply(err));
      log.error({ err, method, path: url.pathname }, 'local machines API failed');
      send(res, { status: 500, body: { error: `internal error: ${(err as Error).message}`, status: 'unknown' } });
    }
  });
}

// ---- input helpers ---------------------------------------------------------------------------

/** Parses a body with zod; any problem is a 400 naming the field. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const result = schema.safeParse(body ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`);
  throw badRequest(`invalid request: ${problems.join('; ')}`);
}

export function queryBool(query: URLSearchParams, name: string): boolean {
  const v = query.get(name);
  if (v === null || v === '') return false;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw badRequest(`${name} must be true or false`);
}

export function queryInt(query: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const v = query.get(name);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw badRequest(`${name} must be an integer from ${min} to ${max}`);
  return n;
}

/** A comma list that may also be repeated: state=started,stopped&state=failed. */
export function queryList(query: URLSearchParams, name: string): string[] {
  return query
    .getAll(name)
    .flatMap((v) => v.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
}

export const json = (body: unknown, status = 200, headers?: Record<string, string>): Reply => ({ status, body, headers });
export const empty = (status: number): Reply => ({ status });
