import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { teamAccess } from '../../queries/access.ts';
import { authorize } from '../../policies/index.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { presentAudit } from '../../presenters/index.ts';
import { teamSlug } from '../../lib/slugs.ts';
import { decodeCursor, pageQuery, toPage } from '../../lib/pagination.ts';
import { AuditEvent } from '../../models/index.ts';

const list = { params: z.object({ team: teamSlug }), query: pageQuery };

export function auditRoutes(): Router {
  const router = new Router();
  router.get('/teams/:team/audit', auth(), validate(list), async (ctx: Context) => {
    const { params, query } = inputOf(ctx, list);
    const { team, role } = await teamAccess(requireActor(ctx), params.team);
    authorize(role, 'audit:read');
    const before = decodeCursor(query.cursor, 1);
    const q = AuditEvent.query()
      .where({ teamId: team.id })
      .orderBy('id', 'desc')
      .limit(query.limit + 1);
    if (before) q.where('id', '<', Number(before[0]));
    const page = toPage(await q, query.limit, (e) => [e.id]);
    ctx.body = { items: page.items.map(presentAudit), next: page.next };
  });
  return router;
}
