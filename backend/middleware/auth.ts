import type { Context, Next } from 'koa';
import { ApiToken, User } from '../models/index.ts';
import { ForbiddenError, UnauthenticatedError } from '../lib/errors.ts';
import { safeEqual, sha256 } from '../lib/crypto.ts';
import { CSRF_COOKIE, SESSION_COOKIE, type SessionSealer } from '../lib/session.ts';

export interface Actor {
  user: User;
  via: 'session' | 'token';
  tokenId?: string;
  sessionId?: string;
}

export const TOKEN_PREFIX = 'rhone_';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const LAST_USED_RESOLUTION_MS = 60_000;

async function actorFromToken(token: string): Promise<Actor | null> {
  if (!token.startsWith(TOKEN_PREFIX)) return null;
  const row = await ApiToken.query()
    .findOne({ tokenHash: sha256(token) })
    .whereNull('revokedAt')
    .where((q) => q.whereNull('expiresAt').orWhere('expiresAt', '>', new Date()));
  if (!row) return null;
  const user = await User.query().findById(row.userId);
  if (!user) return null;
  // Recording every use would turn each read into a write; a minute's resolution is enough.
  if (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
    await ApiToken.query().patch({ lastUsedAt: new Date() }).where({ id: row.id });
  }
  return { user, via: 'token', tokenId: row.id };
}

/**
 * Finds who is calling: a Bearer API token, or the session cookie. Cookie-authenticated writes
 * must echo the CSRF cookie in X-CSRF-Token; tokens are not sent by browsers on their own, so
 * they need no CSRF check.
 */
export function authenticate(sealer: SessionSealer) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const header = ctx.get('Authorization');
    if (header) {
      const match = /^Bearer\s+(\S+)$/i.exec(header);
      const actor = match ? await actorFromToken(match[1]) : null;
      if (!actor) throw new UnauthenticatedError('The API token is invalid, expired or revoked. Create a new one under API tokens.');
      ctx.state.actor = actor;
      return next();
    }
    const session = sealer.unseal(ctx.cookies.get(SESSION_COOKIE));
    if (session) {
      const user = await User.query()
        .select('users.*')
        .join('sessions', 'sessions.user_id', 'users.id')
        .where('sessions.id', session.sessionId)
        .whereNull('sessions.revoked_at')
        .where('sessions.expires_at', '>', new Date())
        .first();
      if (user) {
        if (!SAFE_METHODS.has(ctx.method)) {
          const sent = ctx.get('X-CSRF-Token');
          const cookie = ctx.cookies.get(CSRF_COOKIE) ?? '';
          if (!sent || !safeEqual(sent, cookie) || !safeEqual(sent, session.csrf)) {
            throw new ForbiddenError('This write needs the X-CSRF-Token header set to the rhone_csrf cookie. Reload the page and try again.', 'csrf_failed');
          }
        }
        ctx.state.actor = { user, via: 'session', sessionId: session.sessionId } satisfies Actor;
      }
    }
    return next();
  };
}

export function requireActor(ctx: Context): Actor {
  const actor = ctx.state.actor as Actor | undefined;
  if (!actor) throw new UnauthenticatedError();
  return actor;
}

/** Route guard: 401 unless someone is signed in. */
export function auth() {
  return async (ctx: Context, next: Next): Promise<void> => {
    requireActor(ctx);
    return next();
  };
}
