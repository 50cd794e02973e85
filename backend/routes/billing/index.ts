// A team's plan and billing. Members read it; owners change it: through Stripe Checkout and the
// customer portal when Stripe is configured, directly (PUT .../billing/plan) when it is not.
import Router from '@koa/router';
import type { Context } from 'koa';
import { teamAccess } from '../../queries/access.ts';
import { changePlanLocally, changeSubscriptionPlan, openPortal, startCheckout } from '../../commands/billing.ts';
import { stripeClient } from '../../billing/stripe.ts';
import { authorize } from '../../policies/index.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { presentBilling } from '../../presenters/index.ts';
import { Team } from '../../models/index.ts';
import type { Deps } from '../deps.ts';
import * as schema from './schema.ts';

export function billingRoutes({ config, knex }: Deps): Router {
  const router = new Router({ prefix: '/teams/:team/billing' });
  const stripeConfigured = stripeClient(config) !== null;

  router.get('/', auth(), validate(schema.teamParams), async (ctx: Context) => {
    const { team, role } = await teamAccess(requireActor(ctx), inputOf(ctx, schema.teamParams).params.team);
    authorize(role, 'team:read');
    ctx.body = presentBilling(team, stripeConfigured);
  });

  router.post('/checkout', auth(), validate(schema.checkout), async (ctx: Context) => {
    const { params, body } = inputOf(ctx, schema.checkout);
    const { team, role } = await teamAccess(requireActor(ctx), params.team);
    authorize(role, 'billing:manage');
    ctx.body = { url: await startCheckout(knex, config, team, body.plan) };
  });

  router.post('/portal', auth(), validate(schema.portal), async (ctx: Context) => {
    const { team, role } = await teamAccess(requireActor(ctx), inputOf(ctx, schema.portal).params.team);
    authorize(role, 'billing:manage');
    ctx.body = { url: await openPortal(knex, config, team) };
  });

  router.put('/plan', auth(), validate(schema.changePlan), async (ctx: Context) => {
    const { params, body } = inputOf(ctx, schema.changePlan);
    const actor = requireActor(ctx);
    const { team, role } = await teamAccess(actor, params.team);
    authorize(role, 'billing:manage');
    if (!stripeConfigured) {
      ctx.body = presentBilling(await changePlanLocally(knex, config, actor, team, body.plan), stripeConfigured);
      return;
    }
    // The cached team may predate a webhook that changed its subscription.
    const fresh = await Team.query(knex).findById(team.id).throwIfNotFound();
    const { team: after, message } = await changeSubscriptionPlan(knex, config, actor, fresh, body.plan);
    ctx.body = { ...presentBilling(after, stripeConfigured), message };
  });

  return router;
}
