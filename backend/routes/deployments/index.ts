import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { appAccess, teamAccess } from '../../queries/access.ts';
import { deploymentAccess } from '../../queries/deployment-access.ts';
import { cancelDeployment, createDeployment, rollbackTo } from '../../commands/deployments.ts';
import { latestPerApp, listDeployments, triggerLogins } from '../../queries/deployments.ts';
import { authorize } from '../../policies/index.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { presentDeployment } from '../../presenters/index.ts';
import { appSlug, teamSlug } from '../../lib/slugs.ts';
import { pageQuery } from '../../lib/pagination.ts';
import { App, type Deployment } from '../../models/index.ts';
import type { Deps } from '../deps.ts';

const ref = z
  .string()
  .min(1)
  .max(255)
  // eslint-disable-next-line no-control-regex -- git-check-ref-format forbids control characters, so the pattern names them.
  .refine((r) => !/(^[-/.]|\.\.|[\s~^:?*[\\\x00-\x1f\x7f]|@\{|\/\/|\/$|\.lock$|\.$)/.test(r), 'is not a branch name or commit SHA');

const deploy = { params: z.object({ app: appSlug }), body: z.strictObject({ ref: ref.optional() }) };
const list = { params: z.object({ app: appSlug }), query: pageQuery };
const one = { params: z.object({ id: z.uuid('is not a deployment id') }) };
const team = { params: z.object({ team: teamSlug }) };

/**
 * Deployments as the API shows them, each with the login of who triggered it: one query for the
 * logins of the whole list. `slugOf` names each one's app.
 */
async function presentDeployments(
  deployments: readonly Deployment[],
  slugOf: (d: Deployment) => string,
): Promise<Map<Deployment, ReturnType<typeof presentDeployment>>> {
  const logins = await triggerLogins(deployments);
  return new Map(deployments.map((d) => [d, presentDeployment(d, { slug: slugOf(d) }, d.triggeredBy ? logins.get(d.triggeredBy) : null)]));
}

async function presentOne(d: Deployment, app: Pick<App, 'slug'>) {
  return (await presentDeployments([d], () => app.slug)).get(d)!;
}

export function deploymentRoutes({ knex, config, queues, redis }: Deps): Router {
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
    const presented = await presentDeployments(page.items, () => app.slug);
    ctx.body = { items: page.items.map((d) => presented.get(d)!), next: page.next };
  });

  // The apps list's live status column: one request for the whole team instead of one per app.
  router.get('/teams/:team/latest-deployments', auth(), validate(team), async (ctx: Context) => {
    const { team: t, role } = await teamAccess(requireActor(ctx), inputOf(ctx, team).params.team);
    authorize(role, 'deployment:read');
    const [{ latest, live }, apps] = await Promise.all([latestPerApp(t.id), App.query().select('id', 'slug').where({ teamId: t.id })]);
    const slugs = new Map(apps.map((a) => [a.id, a.slug]));
    const liveByApp = new Map(live.map((d) => [d.appId, d]));
    const shown = latest.filter((d) => slugs.has(d.appId));
    // The one it serves is often the newest itself: present that row once.
    const serving = (d: Deployment) => {
      const current = liveByApp.get(d.appId);
      return current?.id === d.id ? d : current;
    };
    const presented = await presentDeployments([...shown, ...shown.map(serving).filter((d): d is Deployment => Boolean(d))], (d) => slugs.get(d.appId)!);
    ctx.body = {
      items: shown.map((d) => {
        const s = serving(d);
        return { app: slugs.get(d.appId)!, latest: presented.get(d)!, live: s ? presented.get(s)! : null };
      }),
      next: null,
    };
  });

  router.get('/deployments/:id', auth(), validate(one), async (ctx: Context) => {
    const { deployment, app, role } = await deploymentAccess(requireActor(ctx), inputOf(ctx, one).params.id);
    authorize(role, 'deployment:read');
    ctx.body = await presentOne(deployment, app);
  });

  router.post('/deployments/:id/cancel', auth(), validate(one), async (ctx: Context) => {
    const actor = requireActor(ctx);
    const { deployment, app, team, role } = await deploymentAccess(actor, inputOf(ctx, one).params.id);
    authorize(role, 'deployment:cancel');
    const d = await cancelDeployment(knex, queues, redis, actor, team, deployment);
    ctx.status = 202;
    ctx.body = await presentOne(d, app);
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
