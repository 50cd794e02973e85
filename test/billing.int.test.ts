// The billing routes and `npm run stripe:setup`: local mode (no Stripe: the owner changes the plan
// directly) and Stripe mode (Checkout and the portal, against the fake Stripe through stripe-node).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { db } from '../backend/db.ts';
import { AuditEvent, Team } from '../backend/models/index.ts';
import { setupStripe } from '../backend/cli/stripe-setup.ts';
import { stripeClient } from '../backend/billing/stripe.ts';
import { PLAN_DEFINITIONS } from '../backend/billing/plans.ts';
import { invalidate, tag } from '../backend/lib/cache.ts';
import { addMember, makeTeam, makeUser } from './factories.ts';
import { signedIn, startTestServer, type TestServer } from './http.ts';
import { useStripeWorld } from './support/stripe-world.ts';

const run = promisify(execFile);

/** The fake Stripe's price ids for these lookup keys. */
function lookup(world: { fake: { prices: Map<string, Record<string, unknown>> } }, keys: string[]): string[] {
  return keys.map((k) => [...world.fake.prices.values()].find((p) => p.lookup_key === k && p.active !== false)!.id as string);
}

async function acme() {
  const team = await makeTeam(await makeUser('olive'), 'acme');
  await addMember(team, await makeUser('mia'), 'member');
  return team;
}

describe('billing without Stripe (local mode)', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
  });

  it('shows the plan to members and lets an owner change it directly', async () => {
    const team = await acme();
    const mia = await signedIn(server.url, 'mia');
    const shown = await mia.get('/api/teams/acme/billing');
    assert.equal(shown.status, 200);
    assert.equal(shown.body.plan, 'free');
    assert.equal(shown.body.stripeConfigured, false);
    assert.equal(shown.body.changePlanVia, 'local');
    assert.deepEqual(shown.body.included, PLAN_DEFINITIONS.free.included);
    assert.deepEqual(
      shown.body.plans.map((p: { plan: string }) => p.plan),
      ['free', 'starter', 'pro'],
    );
    assert.equal(shown.body.pastDue, null);

    assert.equal((await mia.put('/api/teams/acme/billing/plan', { plan: 'pro' })).status, 403);
    const olive = await signedIn(server.url, 'olive');
    for (const bad of [{ plan: 'enterprise' }, { plan: 'gold' }, {}, { plan: 'pro', extra: 1 }]) {
      const res = await olive.put('/api/teams/acme/billing/plan', bad);
      assert.equal(res.status, 400, JSON.stringify(bad));
      assert.equal(res.body.error, 'validation_error');
    }
    assert.equal((await Team.query(db()).findById(team.id))?.plan, 'free');

    const changed = await olive.put('/api/teams/acme/billing/plan', { plan: 'pro' });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.equal(changed.body.plan, 'pro');
    assert.equal((await mia.get('/api/teams/acme/billing')).body.plan, 'pro', 'members see the new plan at once (caches invalidated)');
    const audit = await AuditEvent.query(db()).where({ teamId: team.id, action: 'billing.plan_changed' });
    assert.deepEqual(
      audit.map((e) => [e.actorLogin, e.data.from, e.data.to]),
      [['olive', 'free', 'pro']],
    );
  });

  it('answers checkout and portal with a 409 that points to the direct plan change', async () => {
    await acme();
    const olive = await signedIn(server.url, 'olive');
    for (const path of ['/api/teams/acme/billing/checkout', '/api/teams/acme/billing/portal']) {
      const res = await olive.post(path, path.endsWith('checkout') ? { plan: 'starter' } : {});
      assert.equal(res.status, 409, JSON.stringify(res.body));
      assert.equal(res.body.error, 'stripe_not_configured');
      assert.match(res.body.message, /PUT \/api\/teams\/:team\/billing\/plan/);
    }
  });
});

describe('billing with Stripe', () => {
  const world = useStripeWorld();

  it('stripe:setup creates meters, products and prices from plans.ts once; a rerun creates nothing', async () => {
    const stripe = stripeClient(world.config)!;
    const first = await setupStripe(stripe);
    assert.equal(first.kept.length, 0);
    assert.deepEqual([world.fake.meters.size, world.fake.products.size, world.fake.prices.size], [3, 2, 7]);
    const byKey = (key: string) => [...world.fake.prices.values()].find((p) => p.lookup_key === key)!;
    assert.deepEqual(byKey('rhone_starter_base').unit_amount, '2000');
    // The first graduated tier is the included quota, in Stripe units (seconds, MB, builds).
    assert.deepEqual(byKey('rhone_starter_machine_seconds').tiers, [
      { up_to: '1800000', unit_amount: '0' },
      { up_to: 'inf', unit_amount_decimal: '0.001388888889' },
    ]);
    assert.deepEqual(byKey('rhone_pro_bandwidth').tiers, [
      { up_to: '500000', unit_amount: '0' },
      { up_to: 'inf', unit_amount_decimal: '0.002' },
    ]);
    assert.equal(byKey('rhone_pro_builds'), undefined, 'unlimited builds on Pro: no metered price');
    assert.deepEqual((byKey('rhone_starter_bandwidth').recurring as { meter: string }).meter, first.meters.bandwidth);

    // Through the npm script's entry point, as an operator runs it.
    const cli = await run(process.execPath, ['--import', 'tsx', 'backend/cli/stripe-setup.ts'], {
      env: { ...process.env, STRIPE_SECRET_KEY: world.fake.apiKey, STRIPE_API_URL: world.fake.url },
    });
    assert.match(cli.stdout, /0 created, 12 already there/);
    const again = await setupStripe(stripe);
    assert.deepEqual(again.created, []);
    assert.deepEqual(again.prices, first.prices);
    assert.deepEqual([world.fake.meters.size, world.fake.products.size, world.fake.prices.size], [3, 2, 7]);

    // A price changed in plans.ts: a new price takes over the lookup key; nothing else is made.
    const before = PLAN_DEFINITIONS.starter.priceCents;
    PLAN_DEFINITIONS.starter.priceCents = 2500;
    try {
      const changed = await setupStripe(stripe);
      assert.equal(changed.created.length, 1);
      assert.match(changed.created[0], /^price rhone_starter_base \(replaces price_/);
      assert.equal(byKey('rhone_starter_base').unit_amount, '2500');
      assert.equal(world.fake.prices.size, 8);
    } finally {
      PLAN_DEFINITIONS.starter.priceCents = before;
    }
  });

  it('sends an owner to Checkout for a paid plan, with one customer per team and metered prices without quantity', async () => {
    const team = await acme();
    const olive = await signedIn(world.server.url, 'olive');
    const notSetUp = await olive.post('/api/teams/acme/billing/checkout', { plan: 'starter' });
    assert.equal(notSetUp.status, 409);
    assert.equal(notSetUp.body.error, 'stripe_not_set_up');
    assert.equal(world.fake.customers.size, 0, 'nothing is created before the catalogue exists');

    await setupStripe(stripeClient(world.config)!);
    const mia = await signedIn(world.server.url, 'mia');
    assert.equal((await mia.post('/api/teams/acme/billing/checkout', { plan: 'starter' })).status, 403);
    assert.equal((await mia.post('/api/teams/acme/billing/portal', {})).status, 403);
    assert.equal((await olive.post('/api/teams/acme/billing/checkout', { plan: 'free' })).status, 400);

    const res = await olive.post('/api/teams/acme/billing/checkout', { plan: 'starter' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.match(res.body.url, /^https:\/\/checkout\.stripe\.test\//);
    const session = world.fake.checkoutSessions[0] as Record<string, any>;
    const customer = (await Team.query(db()).findById(team.id))!.stripeCustomerId;
    assert.equal(session.customer, customer);
    assert.equal(session.mode, 'subscription');
    assert.equal(session.subscription_data.metadata.rhone_team_id, team.id);
    assert.equal(session.success_url, `${world.config.publicUrl}/teams/acme/billing?checkout=success`);
    const items = (session.line_items as { price: string; quantity?: string }[])
      .map((i) => [world.fake.prices.get(i.price)!.lookup_key, i.quantity ?? null])
      .sort();
    assert.deepEqual(items, [
      ['rhone_starter_bandwidth', null],
      ['rhone_starter_base', '1'],
      ['rhone_starter_builds', null],
      ['rhone_starter_machine_seconds', null],
    ]);

    assert.equal((await olive.post('/api/teams/acme/billing/checkout', { plan: 'pro' })).status, 200);
    const portal = await olive.post('/api/teams/acme/billing/portal', {});
    assert.equal(portal.status, 200);
    assert.match(portal.body.url, /^https:\/\/billing\.stripe\.test\//);
    assert.equal(world.fake.customers.size, 1, 'the team has one Stripe customer however often it checks out');
    assert.equal((world.fake.customers.get(customer!)!.metadata as Record<string, string>).rhone_team_id, team.id);
    assert.equal(world.fake.portalSessions[0].return_url, `${world.config.publicUrl}/teams/acme/billing`);

    // Without a subscription, a plan change goes through Checkout.
    const early = await olive.put('/api/teams/acme/billing/plan', { plan: 'pro' });
    assert.deepEqual([early.status, early.body.error], [409, 'no_subscription']);

    // Subscribed: a second Checkout is refused; plan changes swap the subscription's items.
    const starterPrices = lookup(world, ['rhone_starter_base', 'rhone_starter_machine_seconds', 'rhone_starter_bandwidth', 'rhone_starter_builds']);
    world.fake.putSubscription('sub_1', customer!, starterPrices);
    await Team.query(db()).patch({ plan: 'starter', stripeSubscriptionId: 'sub_1', subscriptionStatus: 'active' }).where({ id: team.id });
    await invalidate([tag.team(team.id)]);
    const twice = await olive.post('/api/teams/acme/billing/checkout', { plan: 'pro' });
    assert.deepEqual([twice.status, twice.body.error], [409, 'subscription_exists']);
    const shown = await olive.get('/api/teams/acme/billing');
    assert.deepEqual(
      [shown.body.plan, shown.body.stripeConfigured, shown.body.changePlanVia, shown.body.subscriptionStatus],
      ['starter', true, 'subscription', 'active'],
    );
    assert.equal(JSON.stringify(shown.body).includes(world.fake.apiKey), false);

    assert.equal((await mia.put('/api/teams/acme/billing/plan', { plan: 'pro' })).status, 403);
    const up = await olive.put('/api/teams/acme/billing/plan', { plan: 'pro' });
    assert.equal(up.status, 200, JSON.stringify(up.body));
    assert.equal(up.body.plan, 'pro');
    assert.match(up.body.message, /now on Pro/);
    const sub = world.fake.subscriptions.get('sub_1') as { items: { data: { price: { lookup_key: string } }[] }; last_proration_behavior: string };
    assert.deepEqual(sub.items.data.map((i) => i.price.lookup_key).sort(), ['rhone_pro_bandwidth', 'rhone_pro_base', 'rhone_pro_machine_seconds']);
    assert.equal(sub.last_proration_behavior, 'create_prorations');
    assert.equal((await Team.query(db()).findById(team.id))!.plan, 'pro');

    // Back to Free: the subscription ends with the period; the plan stays until Stripe says so.
    const down = await olive.put('/api/teams/acme/billing/plan', { plan: 'free' });
    assert.equal(down.status, 200);
    assert.equal(down.body.plan, 'pro');
    assert.match(down.body.message, /ends at the end of this billing period/);
    assert.equal((world.fake.subscriptions.get('sub_1') as { cancel_at_period_end: boolean }).cancel_at_period_end, true);
    const audit = await AuditEvent.query(db())
      .where({ teamId: team.id })
      .whereIn('action', ['billing.plan_changed', 'billing.plan_change_requested'])
      .orderBy('id');
    assert.deepEqual(
      audit.map((a) => [a.action, (a.data as { to: string }).to]),
      [
        ['billing.plan_changed', 'pro'],
        ['billing.plan_change_requested', 'free'],
      ],
    );
  });
});
