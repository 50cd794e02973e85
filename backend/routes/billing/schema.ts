import { z } from 'zod';
import { teamSlug } from '../../lib/slugs.ts';
import { SELF_SERVE_PLANS } from '../../billing/plans.ts';
import { PAID_PLANS } from '../../billing/stripe.ts';

const params = z.object({ team: teamSlug });

export const teamParams = { params };
export const checkout = {
  params,
  body: z.strictObject({ plan: z.enum(PAID_PLANS, { message: `must be one of ${PAID_PLANS.join(', ')} (to go back to free, cancel in the billing portal)` }) }),
};
export const portal = { params, body: z.strictObject({}) };
export const changePlan = {
  params,
  body: z.strictObject({ plan: z.enum(SELF_SERVE_PLANS, { message: `must be one of ${SELF_SERVE_PLANS.join(', ')}` }) }),
};
