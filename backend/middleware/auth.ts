import type { Context, Next } from 'koa';
import { ApiToken, User, type TokenScope } from '../models/index.ts';
import { authorizeToken } from '../policies/token-scopes.ts';
import { ForbiddenError, UnauthenticatedError } from '../lib/errors.ts';
import { safeEqual, sha256 } from '../lib/crypto.ts';
import type { SessionSealer } from '../lib/session.ts';
import { tag, type CacheNode } from '../lib/cache.ts';

export interface Actor {
  user: User;
  via: 'session' | 'token';
  tokenId?: string;
  /** A token's scope (policies/token-scopes.ts), which auth() checks against the route. */
  tokenScope?: TokenScope;
  sessionId?: string;
  /** The api instance's read caches, for the commands this request calls; absent in jobs and scripts. */
  caches?: CacheNode;
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
  return { user, via: 'token', tokenId: row.id, tokenScope: row.scope };
}

interface SessionHit {
  /** The user's row as read, copied into a new User for each request, so none can change another's. */
  user: Readonly<Record<string, unknown>>;
}

/** The user of a live session, read with the session's own end, tagged for invalidation. */
async function loadSessionUser(sessionId: string) {
  const row = await User.query()
    .select('users.*', 'sessions.expires_at as sessionExpiresAt')
    .join('sessions', 'sessions.user_id', 'users.id')
    .where('sessions.id', sessionId)
    .whereNull('sessions.revoked_at')
    .where('sessions.expires_at', '>', new Date())
    .first();
  if (!row) return { value: undefined };
  const { sessionExpiresAt, ...user } = row as User & { sessionExpiresAt: Date };
  return {
    value: { user: Object.freeze(user) } satisfies SessionHit,
    tags: [tag.session(sessionId), tag.user(row.id)],
    expiresAt: new Date(sessionExpiresAt).getTime(),
  };
}

/**
 * The signed-in user of a live session. Cached per session id until the session's own expiry at
 * the latest; logging out, and any change to the user, invalidates it (lib/cache.ts).
 */
async function sessionUser(sessionId: string, caches: CacheNode | undefined): Promise<User | undefined> {
  const cache = caches?.cache<SessionHit>('session-user');
  const hit = cache ? await cache.load(sessionId, () => loadSessionUser(sessionId)) : (await loadSessionUser(sessionId)).value;
  return hit && Object.assign(new User(), hit.user);
}

/**
 * Finds who is calling: a Bearer API token, or the session cookie. Cookie-authenticated writes
 * must echo the CSRF cookie in X-CSRF-Token; tokens are not sent by browsers on their own, so
 * they need no CSRF check.
 */
export function authenticate(sealer: SessionSealer, caches?: CacheNode) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const header = ctx.get('Authorization');
    if (header) {
      const match = /^Bearer\s+(\S+)$/i.exec(header);
      const actor = match ? await actorFromToken(match[1]) : null;
      if (!actor) throw new UnauthenticatedError('The API token is invalid, expired or revoked. Create a new one under API tokens.');
      ctx.state.actor = { ...actor, caches } satisfies Actor;
      return next();
    }
    const session = sealer.unseal(ctx.cookies.get(sealer.cookies.session));
    if (session) {
      const user = await sessionUser(session.sessionId, caches);
      if (user) {
        if (!SAFE_METHODS.has(ctx.method)) {
          const sent = ctx.get('X-CSRF-Token');
          const cookie = ctx.cookies.get(sealer.cookies.csrf) ?? '';
          if (!sent || !safeEqual(sent, cookie) || !safeEqual(sent, session.csrf)) {
            throw new ForbiddenError(
              `This write needs the X-CSRF-Token header set to the ${sealer.cookies.csrf} cookie. Reload the page and try again.`,
              'csrf_failed',
            );
          }
        }
        ctx.state.actor = { user, via: 'session', sessionId: session.sessionId, caches } satisfies Actor;
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

/**
 * Route guard: 401 unless someone is signed in; 403 for an API token whose scope does not cover
 * the route. The one place token scopes are enforced: every /api route starts with auth(), which
 * runs after the router matched, so routerPath is the route's pattern (@koa/router sets it).
 */
export function auth() {
  return async (ctx: Context, next: Next): Promise<void> => {
    const actor = requireActor(ctx);
    if (actor.via === 'token') {
      // A token row without a scope cannot exist (the column is not null); the least is assumed anyway.
      authorizeToken(actor.tokenScope ?? 'read', ctx.method, (ctx as { routerPath?: string }).routerPath, ctx.query);
    }
    return next();
  };
}
