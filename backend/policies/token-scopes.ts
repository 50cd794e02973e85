// What an API token may do besides what its user's role allows: its scope. read < deploy < admin,
// each including the ones before it. Checked for every /api route in one place, auth()'s guard,
// by the route it matched; test/authz.int.test.ts calls every route with a token of each scope.
import { ForbiddenError } from '../lib/errors.ts';
import { TOKEN_SCOPES, type TokenScope } from '../models/index.ts';

export { TOKEN_SCOPES, type TokenScope };

/** What a token gets when none is asked for: what a CLI needs for `rhone up` (read, deploy, follow the logs). */
export const DEFAULT_TOKEN_SCOPE: TokenScope = 'deploy';

const RANK: Record<TokenScope, number> = { read: 1, deploy: 2, admin: 3 };
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The writes a deploy token may make; every other write needs admin. */
const DEPLOY_ROUTES = new Set(['POST /api/apps/:app/deploy', 'POST /api/deployments/:id/cancel', 'POST /api/deployments/:id/rollback']);

/**
 * Token management is for browser sessions only, whatever a token's scope: a token that could mint
 * tokens could leave behind one that outlives its own revocation, and one that could list or
 * revoke them could hide that or lock its owner's other automation out.
 */
const isTokenRoute = (route: string) => route === '/api/tokens' || route.startsWith('/api/tokens/');

/** Reads that give away secrets need more than a read. */
const revealsEnv = (route: string, query: Record<string, unknown>) => route === '/api/apps/:app/env' && ['1', 'true'].includes(String(query.reveal));

export type Needed = TokenScope | 'session';

/** The least a caller needs for `method route`: a scope, or a browser session. An unknown route needs admin. */
export function scopeNeeded(method: string, route: string | undefined, query: Record<string, unknown> = {}): Needed {
  if (route === undefined) return 'admin';
  if (isTokenRoute(route)) return 'session';
  if (SAFE_METHODS.has(method)) return revealsEnv(route, query) ? 'admin' : 'read';
  return DEPLOY_ROUTES.has(`${method} ${route}`) ? 'deploy' : 'admin';
}

export function scopeAllows(scope: TokenScope, needed: Needed): boolean {
  return needed !== 'session' && RANK[scope] >= RANK[needed];
}

/** Throws a 403 saying what the token lacks and what to do, unless its scope covers the call. */
export function authorizeToken(scope: TokenScope, method: string, route: string | undefined, query: Record<string, unknown> = {}): void {
  const needed = scopeNeeded(method, route, query);
  if (scopeAllows(scope, needed)) return;
  if (needed === 'session') {
    throw new ForbiddenError('API tokens cannot create, list or revoke API tokens; sign in to the dashboard and manage them under API tokens.');
  }
  const what = route && revealsEnv(route, query) ? 'revealing env var values' : `${method} ${route ?? 'this route'}`;
  throw new ForbiddenError(
    `This API token's scope (${scope}) does not allow ${what}; it needs the ${needed} scope. Create a token with that scope under API tokens in the dashboard.`,
  );
}
