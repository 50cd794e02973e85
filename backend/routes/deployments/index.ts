import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { appAccess, teamAccess } from '../../commands/access.ts';
import { deploymentAccess } from '../../commands/deployment-access.ts';
import { cancelDeployment, createDeployment, listDeployments, rollbackTo } from '../../commands/deployments.ts';
import { authorize } from '../../policies/index.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { presentDeployment } from '../../presenters/index.ts';
import { appSlug, teamSlug } from '../../lib/slugs.ts';
import { pageQuery } from '../../lib/pagination.ts';
import { App, Deployment, User } from '../../models/index.ts';
import type { Deps } from '../deps.ts';

const ref = z
  .string()
  .min(1)
  .max(255)
  .refine((r) => !/(^[-/.]|\.\.|[\s~^:?*[\\\x00-\x1f\x7f]|@\{|\/\/|\/$|\.lock$|\.$)/.test(r), 'is not a branch name or commit SHA');

const deploy = { params: z.object({ app: appSlug }), body: z.strictObject({ ref: ref.optional() }) };
const list = { params: z.object({ app: appSlug }), query: pageQuery };
const one = { params: z.object({ id: z.uuid('is not a deployment id') }) };
const team = { params: z.object({ team: teamSlug }) };

/** The newest deployment of each of the team's apps, and the one each is serving (when not the same). */
async function latestPerApp(teamId: string) {
  const apps = App.query().select('id').where({ teamId });
  const newest = async (liveOnly: boolean): Promise<Deployment[]> => {
    const q = Deployment.query().distinctOn('appId').whereIn('appId', apps).orderBy([{ column: 'appId' }, { column: 'number', order: 'desc' }]);
    return liveOnly ? q.where({ status: 'live' }) : q;
  };
  const [latest, live] = await Promise.all([newest(false), newest(true)]);
  return { latest, live };
}

async function loginsOf(ids: (string | null)[]): Promise<Map<string, string>> {
  const wanted = [...new Set(ids.filter((i): i is string => Boolean(i)))];
  if (wanted.length === 0) return new Map();
  const users = await User.query().whereIn('id', wanted).select('id', 'login');
  return new Map(users.map((u) => [u.id, u.login]));
}

export function deploymentRoutes({ knex, config, queues }: Deps): Router {
  const router = new Router();

  router.post('/apps/:app/deploy', auth(), validate(deploy), async (ctx: Context) => {
    const { params, body } = inputOf(ctx, deploy);
    const actor = requireActor(ctx);
    const { app, role } = await appAccess(actor, params.app);
    authorize(role, 'deployment:create');
    const d = await createDeployment(knex, config, queues, actor, app, { ref: body.ref, trigger: actor.via === 'token' ? 'api' : 'manual' });
    ctx.status = 202;
    ctx.body = presentDeployment(d, app, actor.user.login);
  });

  router.get('/apps/:app/deployments', auth(), validate(list), async (ctx: Context) => {
    const { params, query } = inputOf(ctx, list);
    const { app, role } = await appAccess(requireActor(ctx), params.app);
    authorize(role, 'deployment:read');
    const page = await listDeployments(app.id, query.limit, query.cursor);
    const logins = await loginsOf(page.items.map((d) => d.triggeredBy));
    ctx.body = { items: page.items.map((d) => presentDeployment(d, app, d.triggeredBy ? logins.get(d.triggeredBy) : null)), next: page.next };
  });

  // The apps list's live status column: one request for the whole team instead of one per app.
  router.get('/teams/:team/latest-deployments', auth(), validate(team), async (ctx: Context) => {
    const { team: t, role } = await teamAccess(requireActor(ctx), inputOf(ctx, team).params.team);
    authorize(role, 'deployment:read');
    const [{ latest, live }, apps] = await Promise.all([latestPerApp(t.id), App.query().select('id', 'slug').where({ teamId: t.id })]);
    const slugs = new Map(apps.map((a) => [a.id, a.slug]));
    const liveByApp = new Map(live.map((d) => [d.appId, d]));
    const logins = await loginsOf(latest.map((d) => d.triggeredBy));
    const present = (d: Deployment) => presentDeployment(d, { slug: slugs.get(d.appId)! }, d.triggeredBy ? logins.get(d.triggeredBy) : null);
    ctx.body = {
      items: latest
        .filter((d) => slugs.has(d.appId))
        .map((d) => {
          const serving = liveByApp.get(d.appId);
          return { app: slugs.get(d.appId)!, latest: present(d), live: serving ? (serving.id === d.id ? present(d) : present(serving)) : null };
        }),
      next: null,
    };
  });

  router.get('/deployments/:id', auth(), validate(one), async (ctx: Context) => {
    const { deployment, app, role } = await deploymentAccess(requireActor(ctx), inputOf(ctx, one).params.id);
    authorize(role, 'deployment:read');
    const logins = await loginsOf([deployment.triggeredBy]);
    ctx.body = presentDeployment(deployment, app, deployment.triggeredBy ? logins.get(deployment.triggeredBy) : null);
  });

  router.post('/deployments/:id/cancel', auth(), validate(one), async (ctx: Context) => {
    const actor = requireActor(ctx);
    const { deployment, app, team, role } = await deploymentAccess(actor, inputOf(ctx, one).params.id);
    authorize(role, 'deployment:cancel');
    const d = await cancelDeployment(knex, queues, actor, team, deployment);
    const logins = await loginsOf([d.triggeredBy]);
    ctx.status = 202;
    ctx.body = presentDeployment(d, app, d.triggeredBy ? logins.get(d.triggeredBy) : null);
  });

  router.post('/deployments/:id/rollback', auth(), validate(one), async (ctx: Context) => {
    const actor = requireActor(ctx);
    const { deployment, app, role } = await deploymentAccess(actor, inputOf(ctx, one).params.id);
    authorize(role, 'deployment:rollback');
    const d = await rollbackTo(knex, queues, actor, app, deployment);
    ctx.status = 202;
    ctx.body = presentDeployment(d, app, actor.user.login);
  });

  return router;
}
