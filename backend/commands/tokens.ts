import type { Knex } from 'knex';
import { ApiToken, type TokenScope } from '../models/index.ts';
import { DEFAULT_TOKEN_SCOPE } from '../policies/token-scopes.ts';
import { randomToken, sha256 } from '../lib/crypto.ts';
import { NotFoundError } from '../lib/errors.ts';
import { invalidate, tag } from '../lib/cache.ts';
import { TOKEN_PREFIX, type Actor } from '../middleware/auth.ts';

/** Made only through a browser session (policies/token-scopes.ts): a token never mints another. */
export async function createToken(knex: Knex, actor: Actor, input: { name: string; expiresInDays?: number; scope?: TokenScope }) {
  const token = `${TOKEN_PREFIX}${randomToken(32)}`;
  const row = await ApiToken.query(knex).insertAndFetch({
    userId: actor.user.id,
    name: input.name,
    tokenHash: sha256(token),
    prefix: token.slice(0, TOKEN_PREFIX.length + 6),
    scope: input.scope ?? DEFAULT_TOKEN_SCOPE,
    expiresAt: input.expiresInDays ? new Date(Date.now() + input.expiresInDays * 86_400_000) : null,
  });
  // The only time the secret leaves the server: the caller must copy it now.
  return { row, token };
}

export async function listTokens(actor: Actor) {
  return ApiToken.query().where({ userId: actor.user.id }).whereNull('revokedAt').orderBy('createdAt', 'desc');
}

export async function revokeToken(knex: Knex, actor: Actor, id: string): Promise<void> {
  const n = await ApiToken.query(knex).patch({ revokedAt: new Date() }).where({ id, userId: actor.user.id }).whereNull('revokedAt');
  if (n === 0) throw new NotFoundError('API token');
  // Nothing caches tokens, but live event streams of this token listen for it (lib/cache.ts).
  await invalidate([tag.token(id)]);
}
