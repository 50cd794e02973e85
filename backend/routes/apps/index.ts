import Router from '@koa/router';
import type { Context } from 'koa';
import { appAccess, teamAccess } from '../../commands/access.ts';
import { createApp, deleteApp, listApps, updateApp } from '../../commands/apps.ts';
import { authorize } from '../../policies/index.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { presentApp } from '../../presenters/index.ts';
import type { Deps } from '../deps.ts';
import * as schema from './schema.ts';

export function appRoutes({ knex, config }: Deps): Router {
  const router = new Router();

  router.get('/teams/:team/apps', auth(), validate(schema.listApps), async (ctx: Context) => {
    const { params, query } = inputOf(ctx, schema.listApps);
    const { team, role } = await teamAccess(requireActor(ctx), params.team);
    authorize(role, 'app:read');
    const page = await listApps(team, query.limit, query.cursor);
    ctx.body = { items: page.items.map((a) => presentApp(config, a, team)), next: page.next };
  });

  router.post('/teams/:team/apps', auth(), validate(schema.createApp), async (ctx: Context) => {
    const { params, body } = inputOf(ctx, schema.createApp);
    const actor = requireActor(ctx);
    const { team, role } = await teamAccess(actor, params.team);
    authorize(role, 'app:create');
    ctx.status = 201;
    ctx.body = presentApp(config, await createApp(knex, config, actor, team, body), team);
  });

  router.get('/apps/:app', auth(), validate(schema.appParams), async (ctx: Context) => {
    const { app, team, role } = await appAccess(requireActor(ctx), inputOf(ctx, schema.appParams).params.app);
    authorize(role, 'app:read');
    ctx.body = presentApp(config, app, team);
  });

  router.patch('/apps/:app', auth(), validate(schema.updateApp), async (ctx: Context) => {
    const { params, body } = inputOf(ctx, schema.updateApp);
    const actor = requireActor(ctx);
    const { app, team, role } = await appAccess(actor, params.app);
    authorize(role, 'app:update');
    ctx.body = presentApp(config, await updateApp(knex, config, actor, team, app, body), team);
  });

  router.delete('/apps/:app', auth(), validate(schema.appParams), async (ctx: Context) => {
    const actor = requireActor(ctx);
    const { app, team, role } = await appAccess(actor, inputOf(ctx, schema.appParams).params.app);
    authorize(role, 'app:delete');
    await deleteApp(knex, actor, team, app);
    ctx.status = 204;
  });

  return router;
}
