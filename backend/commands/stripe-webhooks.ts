// What a Stripe event changes, run by the webhooks job (the route stored the delivery once per
// event id). Stripe neither orders nor deduplicates its events, so:
// - subscription events re-fetch the subscription and apply Stripe's current state, with the team
//   row locked, so an old event arriving last cannot put an old plan back;
// - invoice events carry their `created` time, and one older than the last invoice event applied to
//   the team (teams.invoice_event_at) changes nothing.
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type Stripe from 'stripe';
import { z } from 'zod';
import type { Config } from '../config.ts';
import { Team, type Plan } from '../models/index.ts';
import { transaction } from '../lib/transaction.ts';
import { planOfSubscription, stripeClient } from '../billing/stripe.ts';
import { recordAudit } from './audit.ts';

export const STRIPE_EVENTS = [
  'customer.subscription.created',
  'customer.subscription.updated',
  'customer.subscription.deleted',
  'invoice.payment_failed',
  'invoice.paid',
] as const;

const eventSchema = z.object({
  id: z.string().min(1),
  type: z.enum(STRIPE_EVENTS),
  created: z.number().int(),
  data: z.object({
    object: z.looseObject({
      id: z.string().min(1),
      customer: z.union([z.string(), z.looseObject({ id: z.string() })]).nullable(),
      metadata: z.record(z.string(), z.string()).nullish(),
    }),
  }),
});

type StripeEvent = z.infer<typeof eventSchema>;

/** Statuses in which the subscription is over: the team is back on the free plan. */
const ENDED = ['canceled', 'incomplete_expired'];

interface Deps {
  knex: Knex;
  config: Config;
  log: Logger;
}

const customerOf = (event: StripeEvent) => {
  const c = event.data.object.customer;
  return typeof c === 'string' ? c : (c?.id ?? null);
};

/** The team the event is about, locked for the rest of the transaction; null if it is not Rhone's. */
async function lockTeam(trx: Knex.Transaction, event: StripeEvent): Promise<Team | null> {
  const customer = customerOf(event);
  const teamId = event.data.object.metadata?.rhone_team_id;
  if (!customer && !teamId) return null;
  const query = Team.query(trx).forUpdate().first();
  if (customer) query.where({ stripeCustomerId: customer });
  if (teamId && customer) query.orWhere((q) => q.where({ id: teamId }).whereNull('stripeCustomerId'));
  else if (teamId) query.where({ id: teamId });
  return (await query) ?? null;
}

/** Stripe's current state of the subscription; the event's copy if Stripe no longer has it. */
async function currentSubscription(stripe: Stripe | null, event: StripeEvent): Promise<Stripe.Subscription> {
  const fromEvent = event.data.object as unknown as Stripe.Subscription;
  if (!stripe) return fromEvent;
  try {
    return await stripe.subscriptions.retrieve(fromEvent.id);
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return { ...fromEvent, status: 'canceled' };
    throw err;
  }
}

async function applySubscription(deps: Deps, event: StripeEvent): Promise<Record<string, unknown>> {
  const stripe = stripeClient(deps.config);
  return transaction(deps.knex, async (trx) => {
    const team = await lockTeam(trx, event);
    if (!team) return { ignored: 'no Rhone team has this customer' };
    const sub = await currentSubscription(stripe, event);
    const ended = ENDED.includes(sub.status);
    // An old subscription ending while the team has moved to another one changes nothing.
    if (team.stripeSubscriptionId && team.stripeSubscriptionId !== sub.id && (ended || sub.status === 'incomplete')) {
      return { ignored: `subscription ${sub.id} is not the team's current one` };
    }
    const plan: Plan = ended ? 'free' : sub.status === 'incomplete' ? team.plan : (planOfSubscription(sub) ?? team.plan);
    const customer = typeof sub.customer === 'string' ? sub.customer : sub.customer.id;
    const patch = {
      plan,
      stripeSubscriptionId: ended ? null : sub.id,
      subscriptionStatus: sub.status,
      stripeCustomerId: team.stripeCustomerId ?? customer,
    };
    const changed = (Object.keys(patch) as (keyof typeof patch)[]).filter((k) => team[k] !== patch[k]);
    if (changed.length === 0) return { unchanged: true };
    await Team.query(trx).patch(patch).where({ id: team.id });
    await recordAudit(trx, {
      teamId: team.id,
      actor: null,
      action: 'billing.subscription_changed',
      subjectType: 'team',
      subjectId: team.id,
      data: { event: event.type, eventId: event.id, subscription: sub.id, status: sub.status, from: team.plan, to: plan },
    });
    return { plan, status: sub.status };
  });
}

async function applyInvoice(deps: Deps, event: StripeEvent): Promise<Record<string, unknown>> {
  const created = new Date(event.created * 1000);
  return transaction(deps.knex, async (trx) => {
    const team = await lockTeam(trx, event);
    if (!team) return { ignored: 'no Rhone team has this customer' };
    if (team.invoiceEventAt && created < new Date(team.invoiceEventAt)) return { ignored: 'a newer invoice event was already applied' };
    const failed = event.type === 'invoice.payment_failed';
    const pastDueSince = failed ? (team.pastDueSince ?? created) : null;
    await Team.query(trx).patch({ pastDueSince, invoiceEventAt: created }).where({ id: team.id });
    if (Boolean(team.pastDueSince) === Boolean(pastDueSince)) return { pastDue: Boolean(pastDueSince), unchanged: true };
    await recordAudit(trx, {
      teamId: team.id,
      actor: null,
      action: failed ? 'billing.past_due' : 'billing.paid',
      subjectType: 'team',
      subjectId: team.id,
      data: { eventId: event.id, invoice: event.data.object.id },
    });
    if (failed) {
      // The owners hear of it in the dashboard; once per invoice however often Stripe retries.
      await trx('notifications')
        .insert({
          teamId: team.id,
          minRole: 'owner',
          kind: 'billing.past_due',
          title: 'A payment failed',
          body: 'Update the payment method in the billing portal. New deploys pause if the invoice stays unpaid.',
          data: JSON.stringify({ invoice: event.data.object.id }),
          dedupeKey: `past_due:${event.data.object.id}`,
        })
        .onConflict(['teamId', 'dedupeKey'])
        .ignore();
    }
    return { pastDue: failed };
  });
}

/** Applies one stored Stripe event (the webhooks job calls this with the delivery's payload). */
export async function handleStripeEvent(deps: Deps, payload: unknown): Promise<Record<string, unknown>> {
  const event = eventSchema.parse(payload);
  if (event.type.startsWith('customer.subscription.')) return applySubscription(deps, event);
  return applyInvoice(deps, event);
}
