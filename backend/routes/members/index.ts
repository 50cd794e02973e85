import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { teamAccess } from '../../queries/access.ts';
import { changeRole, listMembers, removeMember } from '../../commands/members.ts';
import { authorize } from '../../policies/index.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { presentMember } from '../../presenters/index.ts';
import { githubLogin, teamSlug } from '../../lib/slugs.ts';
import { ROLES } from '../../models/index.ts';
import type { Deps } from '../deps.ts';

const role = z.enum(ROLES, { error: `must be one of ${ROLES.join(', ')}` });
const list = { params: z.object({ team: teamSlug }) };
const one = { params: z.object({ team: teamSlug, login: githubLogin }) };
const update = { params: one.params, body: z.strictObject({ role }) };

export function memberRoutes({ knex }: Deps): Router {
  const router = new Router({ prefix: '/teams/:team/members' });

  router.get('/', auth(), validate(list), async (ctx: Context) => {
    const { team, role: myRole } = await teamAccess(requireActor(ctx), inputOf(ctx, list).params.team);
    authorize(myRole, 'member:list');
    ctx.body = { items: (await listMembers(team.id)).map(presentMember), next: null };
  });

  router.patch('/:login', auth(), validate(update), async (ctx: Context) => {
    const { params, body } = inputOf(ctx, update);
    const actor = requireActor(ctx);
    const { team, role: myRole } = await teamAccess(actor, params.team);
    authorize(myRole, 'member:update');
    ctx.body = presentMember(await changeRole(knex, actor, myRole, team, params.login, body.role));
  });

  // Admins remove members; anyone may remove themselves (leave the team).
  router.delete('/:login', auth(), validate(one), async (ctx: Context) => {
    const { params } = inputOf(ctx, one);
    const actor = requireActor(ctx);
    const { team, role: myRole } = await teamAccess(actor, params.team);
    await removeMember(knex, actor, myRole, team, params.login);
    ctx.status = 204;
  });

  return router;
}

export { role as roleSchema };
