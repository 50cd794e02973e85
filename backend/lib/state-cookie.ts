// Short-lived, single-use state for a browser's round trip through GitHub (sign-in, installing the
// App): sealed (encrypted and authenticated) in an HttpOnly cookie scoped to the flow's path, so
// only the browser that started the flow can finish it, and only once.
import type { Context } from 'koa';
import type { Config } from '../config.ts';
import { decrypt, deriveKey, encrypt } from './crypto.ts';

export interface StateCookieOptions {
  name: string;
  /** The cookie is sent only to this path and below. */
  path: string;
  /** Keys the seal: one purpose's cookie never opens as another's. */
  purpose: string;
  ttlMs: number;
}

export interface StateCookie<T> {
  set(ctx: Context, value: T): void;
  /** Reads and clears it. Null when missing or not sealed by us; `expired` when older than the TTL. */
  take(ctx: Context): { value: T; expired: boolean } | null;
}

export function stateCookie<T>(config: Config, { name, path, purpose, ttlMs }: StateCookieOptions): StateCookie<T> {
  const keys = [{ id: 'o1', key: deriveKey(config.sessionSecret, purpose) }];
  const attributes = { httpOnly: true, sameSite: 'lax' as const, secure: config.secureCookies, path, overwrite: true };
  return {
    set(ctx, value) {
      const sealed = encrypt(JSON.stringify({ value, expiresAt: Date.now() + ttlMs }), keys, name);
      ctx.cookies.set(name, sealed.data.toString('base64url'), { ...attributes, maxAge: ttlMs });
    },
    take(ctx) {
      const cookie = ctx.cookies.get(name);
      // Single use: whatever happens next, this state cannot be presented again.
      ctx.cookies.set(name, '', { ...attributes, maxAge: 0, expires: new Date(0) });
      if (!cookie) return null;
      try {
        const { value, expiresAt } = JSON.parse(decrypt({ keyId: 'o1', data: Buffer.from(cookie, 'base64url') }, keys, name).toString('utf8')) as {
          value: T;
          expiresAt: number;
        };
        return { value, expired: expiresAt < Date.now() };
      } catch {
        return null;
      }
    },
  };
}
