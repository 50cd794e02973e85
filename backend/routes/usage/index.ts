// A team's usage for a billing period (members read it) and the owner's spend cap.
import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { teamAccess } from '../../queries/access.ts';
import { setSpendCap } from '../../commands/spend-cap.ts';
import { authorize } from '../../policies/index.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { teamSlug } from '../../lib/slugs.ts';
import { Team } from '../../models/index.ts';
import { parsePeriod, periodContaining, usageReport } from '../../billing/usage.ts';
import type { Deps } from '../deps.ts';

const params = z.object({ team: teamSlug });
const usage = {
  params,
  query: z.object({
    period: z
      .string()
      .refine((p) => parsePeriod(p) !== null, { message: 'must be a month as YYYY-MM, e.g. 2026-11' })
      .optional(),
  }),
};
// Up to $1,000,000 a month; null removes the cap.
const spendCap = { params, body: z.strictObject({ capCents: z.number().int('must be whole cents').min(0).max(100_000_000).nullable() }) };

export function usageRoutes({ config, knex }: Deps): Router {
  const router = new Router({ prefix: '/teams/:team' });

  router.get('/usage', auth(), validate(usage), async (ctx: Context) => {
    const { params: p, query } = inputOf(ctx, usage);
    const { team, role } = await teamAccess(requireActor(ctx), p.team);
    authorize(role, 'usage:read');
    const now = new Date();
    const period = query.period ? parsePeriod(query.period)! : periodContaining(now);
    // The cached team may predate a plan change or a new cap: the numbers use the row as it is now.
    const fresh = await Team.query(knex).findById(team.id).throwIfNotFound();
    ctx.body = {
      team: team.slug,
      ...(await usageReport(knex, fresh, period, now)),
      // Without Stripe (local mode) usage is still recorded and shown; nothing is charged.
      stripe: { configured: Boolean(config.stripe.secretKey) },
    };
  });

  router.put('/billing/spend-cap', auth(), validate(spendCap), async (ctx: Context) => {
    const { params: p, body } = inputOf(ctx, spendCap);
    const actor = requireActor(ctx);
    const { team, role } = await teamAccess(actor, p.team);
    authorize(role, 'billing:manage');
    const updated = await setSpendCap(knex, actor, team, body.capCents);
    ctx.body = { capCents: updated.spendCapCents };
  });

  return router;
}
