// The session is a cookie sealed with AES-256-GCM under a key derived from RHONE_SESSION_SECRET:
// encrypted and tamper-proof, holding only the session's id, the CSRF token and the expiry. The
// session row in Postgres is what makes it valid, so signing out ends it everywhere at once.
import type { Context } from 'koa';
import type { Knex } from 'knex';
import type { Config } from '../config.ts';
import { DecryptionError, decrypt, deriveKey, encrypt, randomToken } from './crypto.ts';
import { invalidate, tag } from './cache.ts';

export const SESSION_COOKIE = 'rhone_session';
export const CSRF_COOKIE = 'rhone_csrf';

export interface SessionCookieNames {
  session: string;
  csrf: string;
}

/**
 * Over https the cookies are named `__Host-…`: browsers accept such a cookie only with Secure,
 * Path=/ and no Domain, from the host itself (RFC 6265bis §4.1.3.2). An app on `{slug}.rhone.app`
 * can set a `rhone_session` for all of `.rhone.app` (session fixation, a chosen CSRF token), but
 * never a `__Host-` one for the dashboard's host. Over https only the prefixed names are read, so
 * a tossed unprefixed cookie counts for nothing; plain http cannot set Secure, so keeps the old names.
 */
export function sessionCookieNames(secure: boolean): SessionCookieNames {
  const prefix = secure ? '__Host-' : '';
  return { session: `${prefix}${SESSION_COOKIE}`, csrf: `${prefix}${CSRF_COOKIE}` };
}

export const SESSION_TTL_MS = 14 * 24 * 60 * 60 * 1000;

export interface SessionData {
  sessionId: string;
  csrf: string;
  expiresAt: number;
}

/** How many recently opened cookies a sealer remembers; beyond that it forgets them all. */
const OPENED_REMEMBERED = 10_000;

export class SessionSealer {
  private readonly keys;
  /**
   * Cookies this sealer has already decrypted and authenticated, by their exact text: the same
   * bytes always open to the same data, so decrypting them again on every request proves nothing
   * new. Only cookies that opened are kept (garbage cannot fill it); the expiry is still checked
   * on every use.
   */
  private readonly opened = new Map<string, SessionData>();

  /** The cookies' names: readonly, chosen once by whether the public URL is https. */
  constructor(
    secret: string,
    readonly cookies: SessionCookieNames = sessionCookieNames(false),
  ) {
    this.keys = [{ id: 's1', key: deriveKey(secret, 'session-cookie') }];
  }

  seal(data: SessionData): string {
    return encrypt(JSON.stringify(data), this.keys, SESSION_COOKIE).data.toString('base64url');
  }

  unseal(value: string | undefined, now = Date.now()): SessionData | null {
    if (!value) return null;
    const known = this.opened.get(value);
    if (known) return known.expiresAt > now ? known : null;
    try {
      const raw = decrypt({ keyId: 's1', data: Buffer.from(value, 'base64url') }, this.keys, SESSION_COOKIE);
      const data = JSON.parse(raw.toString('utf8')) as SessionData;
      if (typeof data.sessionId !== 'string' || typeof data.csrf !== 'string' || !(data.expiresAt > now)) return null;
      if (this.opened.size >= OPENED_REMEMBERED) this.opened.clear();
      this.opened.set(value, Object.freeze(data));
      return data;
    } catch (err) {
      if (err instanceof DecryptionError || err instanceof SyntaxError) return null;
      throw err;
    }
  }
}

export async function startSession(ctx: Context, knex: Knex, config: Config, sealer: SessionSealer, userId: string): Promise<SessionData> {
  const expiresAt = Date.now() + SESSION_TTL_MS;
  const [row] = (await knex('sessions')
    .insert({ userId, expiresAt: new Date(expiresAt) })
    .returning('id')) as { id: string }[];
  const data = { sessionId: row.id, csrf: randomToken(24), expiresAt };
  const common = { sameSite: 'lax' as const, secure: config.secureCookies, path: '/', maxAge: SESSION_TTL_MS, overwrite: true };
  const names = sessionCookieNames(config.secureCookies);
  ctx.cookies.set(names.session, sealer.seal(data), { ...common, httpOnly: true });
  // Readable by the dashboard's script, which echoes it in X-CSRF-Token (double submit).
  ctx.cookies.set(names.csrf, data.csrf, { ...common, httpOnly: false });
  return data;
}

export async function endSession(ctx: Context, knex: Knex, config: Config, sessionId?: string): Promise<void> {
  if (sessionId) {
    await knex('sessions').where({ id: sessionId }).whereNull('revokedAt').update({ revokedAt: new Date() });
    // Before the response: a copied cookie must stop working on every api process at once.
    await invalidate([tag.session(sessionId)]);
  }
  const names = sessionCookieNames(config.secureCookies);
  for (const name of [names.session, names.csrf]) {
    ctx.cookies.set(name, '', { path: '/', maxAge: 0, expires: new Date(0), secure: config.secureCookies, overwrite: true });
  }
}
