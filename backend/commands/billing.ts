// What an owner does about the team's plan. With Stripe: Checkout to subscribe to a paid plan; a
// subscribed team changes plan here (Stripe's customer portal cannot swap a subscription of several
// metered items), and fixes payment or reads invoices in the customer portal; the webhooks then set
// the plan. Without Stripe (local mode): the plan is changed directly.
import type { Knex } from 'knex';
import type Stripe from 'stripe';
import type { Config } from '../config.ts';
import { Team, type Plan } from '../models/index.ts';
import type { Actor } from '../middleware/auth.ts';
import { ConflictError } from '../lib/errors.ts';
import { transaction } from '../lib/transaction.ts';
import { invalidate, tag } from '../lib/cache.ts';
import { recordAudit } from './audit.ts';
import { lookupKeysOf, planOfSubscription, stripeClient, type PaidPlan } from '../billing/stripe.ts';
import { PLAN_DEFINITIONS } from '../billing/plans.ts';

/** Subscription statuses in which the team still has its subscription (and changes it in the portal). */
const LIVE_STATUSES = ['active', 'trialing', 'past_due', 'unpaid', 'paused'];

function requireStripe(config: Config): Stripe {
  const stripe = stripeClient(config);
  if (!stripe) {
    throw new ConflictError(
      'stripe_not_configured',
      'Stripe is not configured on this Rhone (no STRIPE_SECRET_KEY), so there is no checkout or billing portal: an owner changes the plan directly with PUT /api/teams/:team/billing/plan.',
    );
  }
  return stripe;
}

const billingUrl = (config: Config, team: Team) => `${config.publicUrl}/teams/${encodeURIComponent(team.slug)}/billing`;

/**
 * The team's Stripe customer, created the first time one is needed. The idempotency key makes two
 * concurrent first calls one customer; the conditional update keeps whichever was stored first.
 */
export async function ensureCustomer(knex: Knex, stripe: Stripe, team: Team): Promise<string> {
  if (team.stripeCustomerId) return team.stripeCustomerId;
  const customer = await stripe.customers.create(
    { name: team.name, metadata: { rhone_team_id: team.id, rhone_team_slug: team.slug } },
    { idempotencyKey: `rhone-customer-${team.id}` },
  );
  const updated = await Team.query(knex).patch({ stripeCustomerId: customer.id }).where({ id: team.id }).whereNull('stripeCustomerId');
  if (updated === 0) {
    const stored = await Team.query(knex).findById(team.id).throwIfNotFound();
    return stored.stripeCustomerId!;
  }
  await invalidate([tag.team(team.id)]);
  return customer.id;
}

/** POST /api/teams/:team/billing/checkout: a Stripe Checkout URL subscribing the team to `plan`. */
export async function startCheckout(knex: Knex, config: Config, team: Team, plan: PaidPlan): Promise<string> {
  const stripe = requireStripe(config);
  if (subscribed(team)) {
    throw new ConflictError(
      'subscription_exists',
      `Team "${team.slug}" already has a subscription (${team.plan}); change plan with PUT /api/teams/${team.slug}/billing/plan, and update payment in the billing portal (POST /api/teams/${team.slug}/billing/portal).`,
    );
  }
  const keys = lookupKeysOf(plan);
  const prices = await stripe.prices.list({ lookup_keys: keys, active: true, limit: 100 });
  const missing = keys.filter((k) => !prices.data.some((p) => p.lookup_key === k));
  if (missing.length > 0) {
    throw new ConflictError('stripe_not_set_up', `Stripe has no price ${missing.join(', ')}: run \`npm run stripe:setup\` once against this Stripe account.`);
  }
  const customer = await ensureCustomer(knex, stripe, team);
  const session = await stripe.checkout.sessions.create({
    mode: 'subscription',
    customer,
    client_reference_id: team.id,
    // Metered prices take no quantity: Stripe bills what the meters recorded.
    line_items: prices.data.map((p) => (p.recurring?.usage_type === 'metered' ? { price: p.id } : { price: p.id, quantity: 1 })),
    subscription_data: { metadata: { rhone_team_id: team.id } },
    success_url: `${billingUrl(config, team)}?checkout=success`,
    cancel_url: `${billingUrl(config, team)}?checkout=canceled`,
  });
  if (!session.url) throw new Error('Stripe answered a Checkout session without a URL');
  return session.url;
}

/** POST /api/teams/:team/billing/portal: a Stripe customer portal URL for the team. */
export async function openPortal(knex: Knex, config: Config, team: Team): Promise<string> {
  const stripe = requireStripe(config);
  const customer = await ensureCustomer(knex, stripe, team);
  const session = await stripe.billingPortal.sessions.create({ customer, return_url: billingUrl(config, team) });
  return session.url;
}

/** Whether the team has a subscription it changes rather than a new Checkout. */
export function subscribed(team: Pick<Team, 'stripeSubscriptionId' | 'subscriptionStatus'>): boolean {
  return Boolean(team.stripeSubscriptionId) && LIVE_STATUSES.includes(team.subscriptionStatus ?? '');
}

/**
 * PUT /api/teams/:team/billing/plan with Stripe, for a subscribed team. To another paid plan: the
 * subscription's items are swapped for that plan's prices at once, prorated. To Free: the
 * subscription ends at the end of the period (the team keeps what it paid for until then). Either
 * way Stripe's webhook then sets the plan; an upgrade is also applied here at once, from Stripe's answer.
 */
export async function changeSubscriptionPlan(knex: Knex, config: Config, actor: Actor, team: Team, plan: Plan): Promise<{ team: Team; message: string }> {
  const stripe = requireStripe(config);
  if (!subscribed(team)) {
    if (plan === 'free') return { team, message: `Team "${team.slug}" has no subscription: it is on ${team.plan}.` };
    throw new ConflictError(
      'no_subscription',
      `Team "${team.slug}" has no subscription yet: subscribe to ${plan} through Checkout (POST /api/teams/${team.slug}/billing/checkout).`,
    );
  }
  const subscription = await stripe.subscriptions.retrieve(team.stripeSubscriptionId!);
  if (plan === 'free') {
    await stripe.subscriptions.update(subscription.id, { cancel_at_period_end: true });
    await recordAudit(knex, {
      teamId: team.id,
      actor,
      action: 'billing.plan_change_requested',
      subjectType: 'team',
      subjectId: team.id,
      data: { from: team.plan, to: 'free', via: 'stripe', atPeriodEnd: true },
    });
    return { team, message: `The subscription ends at the end of this billing period; then ${team.name} is on Free.` };
  }
  if (plan === team.plan && !subscription.cancel_at_period_end) return { team, message: `Team "${team.slug}" is already on ${plan}.` };
  const keys = lookupKeysOf(plan as PaidPlan);
  const prices = await stripe.prices.list({ lookup_keys: keys, active: true, limit: 100 });
  if (keys.some((k) => !prices.data.some((p) => p.lookup_key === k))) {
    throw new ConflictError('stripe_not_set_up', 'Stripe is missing prices of that plan: run `npm run stripe:setup` once against this Stripe account.');
  }
  const updated = await stripe.subscriptions.update(subscription.id, {
    cancel_at_period_end: false,
    proration_behavior: 'create_prorations',
    items: [
      ...subscription.items.data.map((item) => ({ id: item.id, deleted: true })),
      ...prices.data.map((p) => (p.recurring?.usage_type === 'metered' ? { price: p.id } : { price: p.id, quantity: 1 })),
    ],
  });
  const now = planOfSubscription(updated) ?? plan;
  const result = await transaction(knex, async (trx) => {
    const row = await Team.query(trx).patchAndFetchById(team.id, { plan: now, subscriptionStatus: updated.status });
    await recordAudit(trx, {
      teamId: team.id,
      actor,
      action: 'billing.plan_changed',
      subjectType: 'team',
      subjectId: team.id,
      data: { from: team.plan, to: now, via: 'stripe' },
    });
    return row;
  });
  return { team: result, message: `${team.name} is now on ${PLAN_DEFINITIONS[now].name}; Stripe prorates this month's invoice.` };
}

/** PUT /api/teams/:team/billing/plan, local mode only: the plan changes at once, nothing is charged. */
export async function changePlanLocally(knex: Knex, config: Config, actor: Actor, team: Team, plan: Plan): Promise<Team> {
  if (stripeClient(config)) {
    throw new ConflictError(
      'stripe_configured',
      'This Rhone bills through Stripe: a team without a subscription subscribes through Checkout (POST /api/teams/:team/billing/checkout).',
    );
  }
  if (team.plan === plan) return team;
  return transaction(knex, async (trx) => {
    const updated = await Team.query(trx).patchAndFetchById(team.id, { plan });
    await recordAudit(trx, {
      teamId: team.id,
      actor,
      action: 'billing.plan_changed',
      subjectType: 'team',
      subjectId: team.id,
      data: { from: team.plan, to: plan, via: 'local' },
    });
    return updated;
  });
}
