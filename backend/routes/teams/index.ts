import Router from '@koa/router';
import type { Context } from 'koa';
import { teamAccess } from '../../queries/access.ts';
import { createTeam, deleteTeam, renameTeam } from '../../commands/teams.ts';
import { authorize } from '../../policies/index.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { presentTeam } from '../../presenters/index.ts';
import type { Deps } from '../deps.ts';
import * as schema from './schema.ts';

export function teamRoutes({ knex }: Deps): Router {
  const router = new Router({ prefix: '/teams' });

  router.post('/', auth(), validate(schema.createTeam), async (ctx: Context) => {
    const team = await createTeam(knex, requireActor(ctx), inputOf(ctx, schema.createTeam).body);
    ctx.status = 201;
    ctx.body = presentTeam(team, 'owner');
  });

  router.get('/:team', auth(), validate(schema.teamParams), async (ctx: Context) => {
    const { team, role } = await teamAccess(requireActor(ctx), inputOf(ctx, schema.teamParams).params.team);
    authorize(role, 'team:read');
    ctx.body = presentTeam(team, role);
  });

  router.patch('/:team', auth(), validate(schema.updateTeam), async (ctx: Context) => {
    const { params, body } = inputOf(ctx, schema.updateTeam);
    const actor = requireActor(ctx);
    const { team, role } = await teamAccess(actor, params.team);
    authorize(role, 'team:update');
    ctx.body = presentTeam(await renameTeam(knex, actor, team, body.name), role);
  });

  router.delete('/:team', auth(), validate(schema.teamParams), async (ctx: Context) => {
    const { team, role } = await teamAccess(requireActor(ctx), inputOf(ctx, schema.teamParams).params.team);
    authorize(role, 'team:delete');
    await deleteTeam(knex, team);
    ctx.status = 204;
  });

  return router;
}
