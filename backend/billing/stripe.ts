// The Stripe client, and the catalogue Rhone keeps in Stripe, derived from plans.ts: one product per
// paid self-serve plan, its monthly base price, one meter per dimension, and per plan and meter a
// graduated metered price whose first tier (free) is the plan's included quota. Everything is found
// again by a stable name (product id, price lookup_key, meter event_name), so `npm run
// stripe:setup` is idempotent and Checkout finds the prices without storing their ids.
import Stripe from 'stripe';
import type { Config } from '../config.ts';
import type { Plan } from '../models/Team.ts';
import { METER_NAMES, METERS, PLAN_DEFINITIONS, SELF_SERVE_PLANS, type Meter } from './plans.ts';

const clients = new Map<string, Stripe>();

/** The Stripe client for this configuration, or null in local mode (no STRIPE_SECRET_KEY). */
export function stripeClient(config: Pick<Config, 'stripe'>): Stripe | null {
  const { secretKey, apiUrl } = config.stripe;
  if (!secretKey) return null;
  const cacheKey = `${apiUrl}\n${secretKey}`;
  let client = clients.get(cacheKey);
  if (!client) {
    // STRIPE_API_URL points the client elsewhere (tests: the fake Stripe): its host, port and protocol.
    const url = new URL(apiUrl);
    const protocol = url.protocol === 'http:' ? 'http' : 'https';
    client = new Stripe(secretKey, {
      host: url.hostname,
      port: url.port ? Number(url.port) : protocol === 'http' ? 80 : 443,
      protocol,
      // Connection errors, 409s and 5xx; never a 429 (upload-usage backs off from those itself).
      maxNetworkRetries: 2,
      timeout: 30_000,
      appInfo: { name: 'rhone' },
    });
    clients.set(cacheKey, client);
  }
  return client;
}

/** Paid plans a customer can subscribe to through Checkout. */
export const PAID_PLANS = SELF_SERVE_PLANS.filter((p) => (PLAN_DEFINITIONS[p].priceCents ?? 0) > 0);
export type PaidPlan = (typeof PAID_PLANS)[number];

export const productId = (plan: Plan) => `rhone_${plan}`;
export const priceLookupKey = (plan: Plan, part: 'base' | Meter) => `rhone_${plan}_${part}`;
/** Set on every Rhone price: a subscription's items say which plan it is, whatever changed it. */
export const PLAN_METADATA_KEY = 'rhone_plan';

/** Cents with at most 12 decimals, as Stripe's unit_amount_decimal wants them (never "1e-7"). */
export function decimalCents(cents: number): Stripe.Decimal {
  return Stripe.Decimal.from(cents.toFixed(12).replace(/\.?0+$/, ''));
}

export interface PriceSpec {
  lookupKey: string;
  plan: PaidPlan;
  meter: Meter | null;
  /** The price's parameters without product and meter id, which are filled in at creation. */
  params: Omit<Stripe.PriceCreateParams, 'product'>;
}

/** Every price the catalogue needs: a base price per paid plan, a metered price per charged meter. */
export function priceSpecs(): PriceSpec[] {
  const specs: PriceSpec[] = [];
  for (const plan of PAID_PLANS) {
    const def = PLAN_DEFINITIONS[plan];
    const metadata = { [PLAN_METADATA_KEY]: plan };
    specs.push({
      lookupKey: priceLookupKey(plan, 'base'),
      plan,
      meter: null,
      params: { currency: 'usd', unit_amount: def.priceCents ?? 0, recurring: { interval: 'month' }, nickname: `${def.name} monthly`, metadata },
    });
    for (const meter of METER_NAMES) {
      const cents = def.overageCentsPerUnit[meter];
      if (cents === null) continue; // nothing is charged beyond the quota, so nothing is metered in Stripe
      const per = METERS[meter].perStripeUnit;
      const perUnit = decimalCents(cents * per);
      const included = def.included[meter];
      const pricing: Partial<Stripe.PriceCreateParams> =
        included === null
          ? { billing_scheme: 'per_unit', unit_amount_decimal: perUnit }
          : {
              billing_scheme: 'tiered',
              tiers_mode: 'graduated',
              tiers: [
                { up_to: Math.floor(included / per), unit_amount: 0 },
                { up_to: 'inf', unit_amount_decimal: perUnit },
              ],
            };
      specs.push({
        lookupKey: priceLookupKey(plan, meter),
        plan,
        meter,
        params: {
          currency: 'usd',
          nickname: `${def.name} ${METERS[meter].label.toLowerCase()} per ${METERS[meter].stripeUnit}`,
          recurring: { interval: 'month', usage_type: 'metered' },
          metadata,
          ...pricing,
        },
      });
    }
  }
  return specs;
}

/** The lookup keys of a plan's prices: what Checkout subscribes to. */
export function lookupKeysOf(plan: PaidPlan): string[] {
  return priceSpecs()
    .filter((s) => s.plan === plan)
    .map((s) => s.lookupKey);
}

/** The Rhone plan a subscription is on, read from its prices' metadata; null if none is Rhone's. */
export function planOfSubscription(sub: Stripe.Subscription): Plan | null {
  const plans = sub.items.data.map((item) => item.price.metadata?.[PLAN_METADATA_KEY]).filter((p): p is Plan => typeof p === 'string' && p in PLAN_DEFINITIONS);
  return plans[0] ?? null;
}
