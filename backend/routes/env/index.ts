import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { appAccess } from '../../queries/access.ts';
import { listEnv, openValue, putEnv, recordReveal } from '../../commands/env.ts';
import { authorize } from '../../policies/index.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { presentEnvVar } from '../../presenters/index.ts';
import { appSlug } from '../../lib/slugs.ts';
import type { Deps } from '../deps.ts';

export const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
export const MAX_VALUE_BYTES = 64 * 1024;

const name = z.string().max(256, 'must be at most 256 characters').regex(ENV_NAME, 'must match [A-Z_][A-Z0-9_]* (upper case, digits, underscores)');
const value = z
  .string()
  .refine((v) => Buffer.byteLength(v) <= MAX_VALUE_BYTES, 'must be at most 64 KB')
  .refine((v) => !v.includes('\0'), 'must not contain NUL bytes')
  .nullable();

const read = {
  params: z.object({ app: appSlug }),
  query: z.object({ reveal: z.enum(['0', '1', 'true', 'false']).optional() }),
};
const put = {
  params: z.object({ app: appSlug }),
  body: z.strictObject({
    vars: z
      .record(name, value)
      .refine((v) => Object.keys(v).length > 0, 'send at least one variable')
      .refine((v) => Object.keys(v).length <= 500, 'at most 500 variables at once'),
  }),
};

export function envRoutes({ knex, config }: Deps): Router {
  const router = new Router({ prefix: '/apps/:app/env' });

  async function respond(ctx: Context, appId: string, reveal: boolean) {
    const rows = await listEnv(knex, appId);
    ctx.body = { items: rows.map((r) => presentEnvVar(r, reveal ? openValue(config.encryptionKeys, r) : null)), next: null };
    return rows;
  }

  router.get('/', auth(), validate(read), async (ctx: Context) => {
    const { params, query } = inputOf(ctx, read);
    const actor = requireActor(ctx);
    const { app, team, role } = await appAccess(actor, params.app);
    authorize(role, 'env:read');
    const reveal = query.reveal === '1' || query.reveal === 'true';
    if (reveal) authorize(role, 'env:reveal');
    const rows = await respond(ctx, app.id, reveal);
    if (reveal)
      await recordReveal(
        knex,
        actor,
        team,
        app,
        rows.map((r) => r.name),
      );
  });

  router.put('/', auth(), validate(put), async (ctx: Context) => {
    const { params, body } = inputOf(ctx, put);
    const actor = requireActor(ctx);
    const { app, team, role } = await appAccess(actor, params.app);
    authorize(role, 'env:write');
    await putEnv(knex, config.encryptionKeys, actor, team, app, body.vars);
    await respond(ctx, app.id, false);
  });

  return router;
}
