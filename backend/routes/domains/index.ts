import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { appAccess } from '../../queries/access.ts';
import { addDomain, checkDomainNow, findDomain, listDomains, removeDomain } from '../../commands/domains.ts';
import { authorize } from '../../policies/index.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { presentDomain } from '../../presenters/index.ts';
import { appSlug } from '../../lib/slugs.ts';
import { logger } from '../../lib/logger.ts';
import type { Deps } from '../deps.ts';

const app = { params: z.object({ app: appSlug }) };
// The hostname's own rules are checked by the command, each with its own message.
const add = {
  params: app.params,
  body: z.strictObject({
    hostname: z.string({ error: 'is required: the hostname to serve the app on, such as www.example.com' }).max(300, 'must be at most 253 characters'),
  }),
};
const one = { params: z.object({ app: appSlug, hostname: z.string().min(1).max(300) }) };

export function domainRoutes({ knex, config }: Deps): Router {
  const router = new Router({ prefix: '/apps/:app/domains' });

  router.get('/', auth(), validate(app), async (ctx: Context) => {
    const access = await appAccess(requireActor(ctx), inputOf(ctx, app).params.app);
    authorize(access.role, 'domain:read');
    ctx.body = { items: (await listDomains(knex, access.app)).map((d) => presentDomain(config, d)), next: null };
  });

  router.post('/', auth(), validate(add), async (ctx: Context) => {
    const { params, body } = inputOf(ctx, add);
    const actor = requireActor(ctx);
    const access = await appAccess(actor, params.app);
    authorize(access.role, 'domain:write');
    const log = ctx.state.log ?? logger();
    ctx.status = 201;
    ctx.body = presentDomain(config, await addDomain(knex, config, log, actor, access.team, access.app, body.hostname));
  });

  router.get('/:hostname', auth(), validate(one), async (ctx: Context) => {
    const { params } = inputOf(ctx, one);
    const access = await appAccess(requireActor(ctx), params.app);
    authorize(access.role, 'domain:read');
    ctx.body = presentDomain(config, await findDomain(knex, access.app, params.hostname));
  });

  router.post('/:hostname/check', auth(), validate(one), async (ctx: Context) => {
    const { params } = inputOf(ctx, one);
    const actor = requireActor(ctx);
    const access = await appAccess(actor, params.app);
    authorize(access.role, 'domain:write');
    const domain = await findDomain(knex, access.app, params.hostname);
    ctx.body = presentDomain(config, await checkDomainNow(knex, config, actor, access.team, access.app, domain));
  });

  router.delete('/:hostname', auth(), validate(one), async (ctx: Context) => {
    const { params } = inputOf(ctx, one);
    const actor = requireActor(ctx);
    const access = await appAccess(actor, params.app);
    authorize(access.role, 'domain:write');
    await removeDomain(knex, config, actor, access.team, access.app, await findDomain(knex, access.app, params.hostname));
    ctx.status = 204;
  });

  return router;
}
