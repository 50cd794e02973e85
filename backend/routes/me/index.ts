import Router from '@koa/router';
import type { Context } from 'koa';
import { teamsOf } from '../../commands/users.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { presentUser } from '../../presenters/index.ts';
import { permissionsOf } from '../../policies/index.ts';
import type { Role } from '../../models/index.ts';
import type { TeamSummary } from '../../lib/api-types.ts';

export function meRoutes(): Router {
  const router = new Router();
  router.get('/me', auth(), async (ctx: Context) => {
    const actor = requireActor(ctx);
    const teams = await teamsOf(actor.user.id);
    ctx.body = {
      user: presentUser(actor.user),
      teams: teams.map(({ slug, name, role, plan, personal }): TeamSummary => ({
        slug,
        name,
        role: role as Role,
        plan,
        personal,
        can: permissionsOf(role as Role),
      })),
    };
  });
  return router;
}
