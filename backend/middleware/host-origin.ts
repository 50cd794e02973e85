// Who may talk to the api from a browser. DNS rebinding: a page on evil.example whose name is
// re-resolved to 127.0.0.1 is same-origin with the local api, so SameSite cookies and CORS do not
// stop it, and local mode signs anyone in (/auth/dev). Two checks close that:
// - local mode answers only to its own host names: a rebound page's requests carry its own Host;
// - writes from a page on another origin are refused, in both modes (Origin is set by browsers on
//   every cross-origin and every non-GET request: https://fetch.spec.whatwg.org/#origin-header).
// Clients that send no Origin (the CLI, curl, servers) are not browsers and are not affected.
import type { Context, Next } from 'koa';
import type { Config } from '../config.ts';
import { ForbiddenError } from '../lib/errors.ts';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '[::1]'];

/** "Example.com:3000" → "example.com", "[::1]:3000" → "[::1]", as URL.hostname writes them. */
export function hostnameOf(header: string | undefined): string {
  const h = (header ?? '').trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  return h.replace(/:\d+$/, '').replace(/\.$/, '');
}

/**
 * Local mode only: the Host header must name this machine or RHONE_PUBLIC_URL's host. The raw
 * header, not ctx.host: with an https public URL Koa trusts X-Forwarded-Host, which a rebound
 * page, being same-origin, may set itself.
 */
export function localHostGuard(config: Config) {
  const publicHost = new URL(config.publicUrl).hostname;
  const allowed = new Set([...LOOPBACK_HOSTS, publicHost]);
  return async (ctx: Context, next: Next): Promise<void> => {
    const host = hostnameOf(ctx.req.headers.host).slice(0, 100);
    if (!allowed.has(host)) {
      throw new ForbiddenError(
        `This Rhone answers only to ${[...allowed].join(', ')}, not to "${host || '(no Host header)'}". To reach it under that name, set RHONE_PUBLIC_URL to its address (as in http://${host || 'rhone.internal'}:${config.port}) and restart.`,
        'host_not_allowed',
      );
    }
    return next();
  };
}

/** Writes must come from Rhone's own pages: RHONE_PUBLIC_URL's origin, or the very host the request is sent to. */
export function originGuard(config: Config) {
  const publicOrigin = new URL(config.publicUrl).origin;
  return async (ctx: Context, next: Next): Promise<void> => {
    const origin = ctx.get('Origin');
    if (!origin || SAFE_METHODS.has(ctx.method) || isOwnOrigin(origin, publicOrigin, ctx.req.headers.host)) return next();
    throw new ForbiddenError(
      `This write came from a page at ${origin.slice(0, 100)}, which is not Rhone (${publicOrigin}); nothing was changed. Use Rhone from ${publicOrigin}, or, if that is where you opened it, set RHONE_PUBLIC_URL to that address and restart.`,
      'origin_not_allowed',
    );
  };
}

function isOwnOrigin(origin: string, publicOrigin: string, host: string | undefined): boolean {
  if (origin === publicOrigin) return true;
  try {
    // Same host and port as the request: the page was served by this api (dev servers that proxy
    // /api, as Vite does, keep the browser's Host, so they pass too).
    return new URL(origin).host === (host ?? '').trim().toLowerCase();
  } catch {
    return false; // "null" (sandboxed frames, file:// pages) and garbage
  }
}
