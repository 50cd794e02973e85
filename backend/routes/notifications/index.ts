// The caller's in-app notifications in a team (quota and spend-cap alerts, among others).
import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { teamAccess } from '../../queries/access.ts';
import { listNotifications, markAllRead, markRead } from '../../commands/notifications.ts';
import { authorize } from '../../policies/index.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { teamSlug } from '../../lib/slugs.ts';
import { pageQuery } from '../../lib/pagination.ts';
import { presentNotification } from '../../presenters/index.ts';
import type { Deps } from '../deps.ts';

const params = z.object({ team: teamSlug });
const list = { params, query: pageQuery.extend({ unread: z.enum(['true', 'false']).optional() }) };
const one = { params: params.extend({ id: z.coerce.number({ error: 'must be a notification id' }).int().positive().max(Number.MAX_SAFE_INTEGER) }) };

export function notificationRoutes({ knex }: Deps): Router {
  const router = new Router({ prefix: '/teams/:team/notifications' });

  router.get('/', auth(), validate(list), async (ctx: Context) => {
    const { params: p, query } = inputOf(ctx, list);
    const actor = requireActor(ctx);
    const { team, role } = await teamAccess(actor, p.team);
    authorize(role, 'notification:read');
    const page = await listNotifications(knex, team, actor, role, { limit: query.limit, cursor: query.cursor, unread: query.unread === 'true' });
    ctx.body = { items: page.items.map(presentNotification), next: page.next, unread: page.unread };
  });

  router.post('/read-all', auth(), validate({ params }), async (ctx: Context) => {
    const actor = requireActor(ctx);
    const { team, role } = await teamAccess(actor, inputOf(ctx, { params }).params.team);
    authorize(role, 'notification:read');
    ctx.body = { marked: await markAllRead(knex, team, actor, role) };
  });

  router.post('/:id/read', auth(), validate(one), async (ctx: Context) => {
    const { params: p } = inputOf(ctx, one);
    const actor = requireActor(ctx);
    const { team, role } = await teamAccess(actor, p.team);
    authorize(role, 'notification:read');
    ctx.body = presentNotification(await markRead(knex, team, actor, role, p.id));
  });

  return router;
}
