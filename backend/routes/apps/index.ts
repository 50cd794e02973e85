import Router from '@koa/router';
import type { Context } from 'koa';
import { appAccess, teamAccess } from '../../queries/access.ts';
import { createApp, deleteApp, listApps, updateApp } from '../../commands/apps.ts';
import { authorize } from '../../policies/index.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { presentApp } from '../../presenters/index.ts';
import { tag } from '../../lib/cache.ts';
import type { Deps } from '../deps.ts';
import * as schema from './schema.ts';
import { instanceRoutes } from './instances.ts';

export function appRoutes({ knex, config, caches, queues }: Deps): Router {
  const router = new Router();
  // The serialized page per team, limit and cursor, tagged with the team: every app write records
  // an audit event, which invalidates it. Bounded lower than the others: a page can be 100 apps.
  // Kept as bytes, ready to send: encoding a 50-app page again on every request costs as much as
  // everything else a cached read does.
  const pages = caches.cache<Buffer>('app-list-pages', { maxEntries: 1000 });

  router.get('/teams/:team/apps', auth(), validate(schema.listApps), async (ctx: Context) => {
    const { params, query } = inputOf(ctx, schema.listApps);
    // Who may read is decided on every request, before anything is served from the cache.
    const { team, role } = await teamAccess(requireActor(ctx), params.team);
    authorize(role, 'app:read');
    const json = await pages.load(`${team.id}:${query.limit}:${query.cursor ?? ''}`, async () => {
      const page = await listApps(team, query.limit, query.cursor);
      const body = { items: page.items.map((a) => presentApp(config, a, team)), next: page.next };
      return { value: Buffer.from(JSON.stringify(body)), tags: [tag.team(team.id)] };
    });
    // What Koa sends for an object body; set as-is, without a lookup in the MIME table.
    ctx.set('Content-Type', 'application/json; charset=utf-8');
    ctx.body = json;
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
    await deleteApp(knex, queues, actor, team, app);
    ctx.status = 204;
  });

  instanceRoutes(router, config);
  return router;
}
