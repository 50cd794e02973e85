// The dashboard's only way to the API: same-origin fetch with the session cookie, the CSRF
// double-submit header on writes, and errors turned into ApiError with per-field messages.

export interface FieldProblem {
  field: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Per-field messages keyed by the field's path in the body ("slug", "source.url"). */
    readonly fields: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface Page<T> {
  items: T[];
  next: string | number | null;
}

type Listener = (err: ApiError) => void;
const unauthenticatedListeners = new Set<Listener>();

/** Called when any request answers 401: the session ended (signed out elsewhere, expired). */
export function onUnauthenticated(listener: Listener): () => void {
  unauthenticatedListeners.add(listener);
  return () => unauthenticatedListeners.delete(listener);
}

let base = '';
/** Tests outside a browser point the client at a server; the dashboard uses its own origin. */
export function setApiBase(url: string): void {
  base = url.replace(/\/$/, '');
}

/**
 * The CSRF cookie the api set: `__Host-rhone_csrf` over https, `rhone_csrf` over plain http. The
 * prefixed one wins: an app on a sibling subdomain can plant a `rhone_csrf`, never a `__Host-` one.
 */
export function csrfToken(cookies: string = typeof document === 'undefined' ? '' : document.cookie): string {
  const found = new Map<string, string>();
  for (const part of cookies.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (!found.has(k)) found.set(k, v.join('='));
  }
  const value = found.get('__Host-rhone_csrf') ?? found.get('rhone_csrf');
  return value === undefined ? '' : decodeURIComponent(value);
}

/** "body.source.url" → "source.url"; params and query problems keep their prefix. */
export function fieldErrors(details: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(details)) return out;
  for (const d of details as FieldProblem[]) {
    if (!d || typeof d.field !== 'string') continue;
    const key = d.field.replace(/^body\.?/, '') || '_';
    out[key] ??= d.message;
  }
  return out;
}

async function toError(res: Response): Promise<ApiError> {
  let body: { error?: string; message?: string; details?: unknown } = {};
  try {
    body = await res.json();
  } catch {
    // Not JSON: a proxy's page, a crash. Say what we know.
  }
  const message = body.message ?? `The server answered ${res.status} ${res.statusText || ''}`.trim() + '. Try again in a moment.';
  return new ApiError(res.status, body.error ?? `http_${res.status}`, message, fieldErrors(body.details));
}

export async function request<T>(method: string, path: string, body?: unknown, init: { signal?: AbortSignal } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') headers['x-csrf-token'] = csrfToken();
  let res: Response;
  try {
    res = await fetch(base + path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: init.signal,
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'Rhone could not be reached. Check your connection; the action was not done.');
  }
  if (!res.ok) {
    const err = await toError(res);
    if (res.status === 401) for (const l of unauthenticatedListeners) l(err);
    throw err;
  }
  if (res.status === 204) return undefined as T;
  const type = res.headers.get('content-type') ?? '';
  return (type.includes('json') ? res.json() : res.text()) as Promise<T>;
}

export const api = {
  get: <T>(path: string, init?: { signal?: AbortSignal }) => request<T>('GET', path, undefined, init),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, body ?? {}),
  put: <T>(path: string, body: unknown) => request<T>('PUT', path, body),
  patch: <T>(path: string, body: unknown) => request<T>('PATCH', path, body),
  del: <T = void>(path: string) => request<T>('DELETE', path),
};

export const enc = encodeURIComponent;

/** Every item of a paged list (`limit` per request, following `next`). */
export async function allPages<T>(path: string, limit = 100): Promise<T[]> {
  const all: T[] = [];
  const join = path.includes('?') ? '&' : '?';
  let cursor: string | number | null = null;
  do {
    const page: Page<T> = await api.get<Page<T>>(`${path}${join}limit=${limit}${cursor ? `&cursor=${enc(String(cursor))}` : ''}`);
    all.push(...page.items);
    cursor = page.next;
  } while (cursor);
  return all;
}
