import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { createToken, listTokens, revokeToken } from '../../commands/tokens.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { presentToken } from '../../presenters/index.ts';
import { DEFAULT_TOKEN_SCOPE, TOKEN_SCOPES } from '../../policies/token-scopes.ts';
import type { Deps } from '../deps.ts';

const create = {
  body: z.strictObject({
    name: z.string().trim().min(1, 'is required').max(100),
    expiresInDays: z.number().int().min(1).max(3650).optional(),
    // The least a CLI needs for `rhone up` unless asked for more (policies/token-scopes.ts).
    scope: z.enum(TOKEN_SCOPES, { message: `must be one of ${TOKEN_SCOPES.join(', ')}` }).default(DEFAULT_TOKEN_SCOPE),
  }),
};
const revoke = { params: z.object({ id: z.uuid('is not a token id') }) };

export function tokenRoutes({ knex }: Deps): Router {
  const router = new Router({ prefix: '/tokens' });
  router.get('/', auth(), async (ctx: Context) => {
    ctx.body = { items: (await listTokens(requireActor(ctx))).map(presentToken), next: null };
  });
  router.post('/', auth(), validate(create), async (ctx: Context) => {
    const { row, token } = await createToken(knex, requireActor(ctx), inputOf(ctx, create).body);
    ctx.status = 201;
    ctx.body = { ...presentToken(row), token };
  });
  router.delete('/:id', auth(), validate(revoke), async (ctx: Context) => {
    await revokeToken(knex, requireActor(ctx), inputOf(ctx, revoke).params.id);
    ctx.status = 204;
  });
  return router;
}
