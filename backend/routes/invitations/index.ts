import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { teamAccess } from '../../queries/access.ts';
import { acceptInvitation, declineInvitation, invite, listTeamInvitations, myInvitations, revokeInvitation } from '../../commands/invitations.ts';
import { authorize } from '../../policies/index.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { presentInvitation, presentTeam } from '../../presenters/index.ts';
import { githubLogin, teamSlug } from '../../lib/slugs.ts';
import { roleSchema } from '../members/index.ts';
import type { Deps } from '../deps.ts';

const teamList = { params: z.object({ team: teamSlug }) };
const create = { params: teamList.params, body: z.strictObject({ login: githubLogin, role: roleSchema.default('member') }) };
const teamOne = { params: z.object({ team: teamSlug, id: z.uuid('is not an invitation id') }) };
const mine = { params: z.object({ id: z.uuid('is not an invitation id') }) };

export function invitationRoutes({ knex }: Deps): Router {
  const router = new Router();

  router.get('/teams/:team/invitations', auth(), validate(teamList), async (ctx: Context) => {
    const { team, role } = await teamAccess(requireActor(ctx), inputOf(ctx, teamList).params.team);
    authorize(role, 'invitation:list');
    ctx.body = { items: (await listTeamInvitations(team.id)).map(presentInvitation), next: null };
  });

  router.post('/teams/:team/invitations', auth(), validate(create), async (ctx: Context) => {
    const { params, body } = inputOf(ctx, create);
    const actor = requireActor(ctx);
    const { team, role } = await teamAccess(actor, params.team);
    authorize(role, 'member:invite');
    ctx.status = 201;
    ctx.body = presentInvitation(await invite(knex, actor, role, team, body.login, body.role));
  });

  router.delete('/teams/:team/invitations/:id', auth(), validate(teamOne), async (ctx: Context) => {
    const { params } = inputOf(ctx, teamOne);
    const actor = requireActor(ctx);
    const { team, role } = await teamAccess(actor, params.team);
    authorize(role, 'invitation:revoke');
    await revokeInvitation(knex, actor, team, params.id);
    ctx.status = 204;
  });

  // The invitee's side: invitations addressed to my login.
  router.get('/invitations', auth(), async (ctx: Context) => {
    ctx.body = { items: (await myInvitations(requireActor(ctx))).map(presentInvitation), next: null };
  });

  router.post('/invitations/:id/accept', auth(), validate(mine), async (ctx: Context) => {
    const { team, role } = await acceptInvitation(knex, requireActor(ctx), inputOf(ctx, mine).params.id);
    ctx.body = presentTeam(team, role);
  });

  router.post('/invitations/:id/decline', auth(), validate(mine), async (ctx: Context) => {
    await declineInvitation(knex, requireActor(ctx), inputOf(ctx, mine).params.id);
    ctx.status = 204;
  });

  return router;
}
