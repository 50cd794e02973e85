// `npm run stripe:setup`: creates in Stripe what billing needs, from plans.ts, idempotently. Meters
// are found by event_name, products by their id (rhone_<plan>), prices by lookup_key; a price whose
// definition changed in plans.ts is replaced by a new one that takes over the lookup key (Stripe
// prices are immutable; existing subscriptions keep the old one until they change plan). Running it
// again creates nothing.
import { createHash } from 'node:crypto';
import type Stripe from 'stripe';
import { configOrExit } from '../config.ts';
import { METER_NAMES, METERS, PLAN_DEFINITIONS, type Meter } from '../billing/plans.ts';
import { PAID_PLANS, PLAN_METADATA_KEY, priceSpecs, productId, stripeClient } from '../billing/stripe.ts';

export interface SetupResult {
  created: string[];
  kept: string[];
  meters: Record<Meter, string>;
  prices: Record<string, string>;
}

const FINGERPRINT_KEY = 'rhone_fingerprint';

async function ensureMeters(stripe: Stripe, result: SetupResult): Promise<void> {
  const byEvent = new Map<string, Stripe.Billing.Meter>();
  for await (const meter of stripe.billing.meters.list({ limit: 100 })) byEvent.set(meter.event_name, meter);
  for (const name of METER_NAMES) {
    const m = METERS[name];
    let meter = byEvent.get(m.stripeEventName);
    if (meter) {
      result.kept.push(`meter ${m.stripeEventName}`);
      // A deactivated meter rejects events: bring it back rather than make a twin (event names are unique).
      if (meter.status === 'inactive') meter = await stripe.billing.meters.reactivate(meter.id);
    } else {
      meter = await stripe.billing.meters.create({
        display_name: `Rhone ${m.label.toLowerCase()} (${m.stripeUnit}s)`,
        event_name: m.stripeEventName,
        default_aggregation: { formula: 'sum' },
        customer_mapping: { type: 'by_id', event_payload_key: 'stripe_customer_id' },
        value_settings: { event_payload_key: 'value' },
      });
      result.created.push(`meter ${m.stripeEventName}`);
    }
    result.meters[name] = meter.id;
  }
}

async function ensureProducts(stripe: Stripe, result: SetupResult): Promise<void> {
  for (const plan of PAID_PLANS) {
    const id = productId(plan);
    const existing = await stripe.products.retrieve(id).catch((err: unknown) => {
      if ((err as { statusCode?: number }).statusCode === 404) return null;
      throw err;
    });
    if (existing) {
      result.kept.push(`product ${id}`);
      continue;
    }
    await stripe.products.create({ id, name: `Rhone ${PLAN_DEFINITIONS[plan].name}`, metadata: { [PLAN_METADATA_KEY]: plan } });
    result.created.push(`product ${id}`);
  }
}

async function ensurePrices(stripe: Stripe, result: SetupResult): Promise<void> {
  const specs = priceSpecs();
  const existing = new Map<string, Stripe.Price>();
  for await (const price of stripe.prices.list({ lookup_keys: specs.map((s) => s.lookupKey), active: true, limit: 100 })) {
    if (price.lookup_key) existing.set(price.lookup_key, price);
  }
  for (const spec of specs) {
    const params: Stripe.PriceCreateParams = {
      ...spec.params,
      product: productId(spec.plan),
      ...(spec.meter ? { recurring: { ...spec.params.recurring!, meter: result.meters[spec.meter] } } : {}),
    };
    // What the price is, from plans.ts: a changed number means a new price.
    const fingerprint = createHash('sha256').update(JSON.stringify(params)).digest('hex').slice(0, 32);
    const found = existing.get(spec.lookupKey);
    if (found && found.metadata?.[FINGERPRINT_KEY] === fingerprint) {
      result.kept.push(`price ${spec.lookupKey}`);
      result.prices[spec.lookupKey] = found.id;
      continue;
    }
    const price = await stripe.prices.create({
      ...params,
      lookup_key: spec.lookupKey,
      transfer_lookup_key: Boolean(found),
      metadata: { ...spec.params.metadata, [FINGERPRINT_KEY]: fingerprint },
    });
    result.created.push(`price ${spec.lookupKey}${found ? ` (replaces ${found.id})` : ''}`);
    result.prices[spec.lookupKey] = price.id;
  }
}

export async function setupStripe(stripe: Stripe): Promise<SetupResult> {
  const result: SetupResult = { created: [], kept: [], meters: {} as Record<Meter, string>, prices: {} };
  await ensureMeters(stripe, result);
  await ensureProducts(stripe, result);
  await ensurePrices(stripe, result);
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const config = configOrExit();
  const stripe = stripeClient(config);
  if (!stripe) {
    console.error(
      'rhone: STRIPE_SECRET_KEY is not set, so there is no Stripe account to set up. Without it Rhone records usage and owners change plans directly.',
    );
    process.exit(78);
  }
  try {
    const result = await setupStripe(stripe);
    for (const line of result.created) console.log(`rhone: created ${line}`);
    console.log(`rhone: Stripe is set up (${result.created.length} created, ${result.kept.length} already there).`);
  } catch (err) {
    const e = err as { message?: string; type?: string };
    console.error(`rhone: Stripe setup failed: ${e.type ? `${e.type}: ` : ''}${e.message ?? String(err)}`);
    process.exit(1);
  }
}
