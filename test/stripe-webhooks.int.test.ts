// POST /webhooks/stripe end to end: events signed with stripe-node's test header helper, stored once
// per event id by the api, applied by a real webhooks worker that re-fetches subscriptions from the
// fake Stripe.
import assert from 'node:assert/strict';
import { db } from '../backend/db.ts';
import { AuditEvent, Team, WebhookDelivery } from '../backend/models/index.ts';
import { setupStripe } from '../backend/cli/stripe-setup.ts';
import { stripeClient } from '../backend/billing/stripe.ts';
import { PAST_DUE_GRACE_DAYS } from '../backend/billing/plans.ts';
import { makeApp, makeTeam, makeUser } from './factories.ts';
import { signedIn } from './http.ts';
import { until } from './local-helpers.ts';
import { TestRepo } from './support/git-repo.ts';
import { deliverStripe, stripeEvent, useStripeWorld } from './support/stripe-world.ts';
import { answeredWithin, holdRequest } from './support/held-request.ts';

const DAY = 86_400_000;

describe('Stripe webhooks', () => {
  const world = useStripeWorld({ worker: true });
  let team: Team;

  beforeEach(async () => {
    team = await makeTeam(await makeUser('olive'), 'acme');
    await Team.query(db()).patch({ stripeCustomerId: 'cus_acme' }).where({ id: team.id });
    await setupStripe(stripeClient(world.config)!);
  });

  const teamNow = () => Team.query(db()).findById(team.id).throwIfNotFound();
  const priceIds = (plan: 'starter' | 'pro') =>
    [...world.fake.prices.values()].filter((p) => String(p.lookup_key).startsWith(`rhone_${plan}_`)).map((p) => p.id as string);
  const processed = (eventId: string) =>
    until(`event ${eventId} to be processed`, async () => {
      const row = await WebhookDelivery.query(db()).findOne({ provider: 'stripe', deliveryId: eventId });
      return row?.processedAt ? row : undefined;
    });
  const send = async (event: ReturnType<typeof stripeEvent>) => {
    const res = await deliverStripe(world.server.url, event);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return processed(event.id);
  };

  it('refuses a body over 1 MB from its Content-Length alone, and a missing signature header, without reading the body', async () => {
    const url = `${world.server.url}/webhooks/stripe`;
    const signature = `t=${Math.floor(Date.now() / 1000)},v1=${'0'.repeat(64)}`;
    const big = holdRequest(url, { 'content-type': 'application/json', 'content-length': String(1024 * 1024 + 1), 'stripe-signature': signature });
    const tooBig = await answeredWithin(big, 5000, 'the api waited for a body it must refuse from its length');
    assert.equal(tooBig.status, 413);
    assert.match(tooBig.body.message, /larger than the 1 MB Stripe sends at most/);
    const unsigned = holdRequest(url, { 'content-type': 'application/json', 'content-length': '1000' }, '{"id":');
    const res = await answeredWithin(unsigned, 5000, 'the api read the body of an unsigned request');
    assert.equal(res.status, 400);
    assert.equal(res.body.error, 'invalid_signature');
    unsigned.req.destroy();
    assert.equal(await WebhookDelivery.query(db()).resultSize(), 0);
  });

  it('refuses a wrong, missing or stale signature with 400 and stores nothing', async () => {
    const event = stripeEvent('invoice.payment_failed', { id: 'in_1', object: 'invoice', customer: 'cus_acme' });
    for (const res of [
      await deliverStripe(world.server.url, event, { secret: 'whsec_not_the_secret' }),
      await deliverStripe(world.server.url, event, { signature: null }),
      await deliverStripe(world.server.url, event, { signature: 't=1,v1=' + '0'.repeat(64) }),
      // Signed correctly, but 301 s ago: outside the 300 s tolerance (a replay).
      await deliverStripe(world.server.url, event, { timestamp: Math.floor(Date.now() / 1000) - 301 }),
    ]) {
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error, 'invalid_signature');
    }
    assert.equal(await WebhookDelivery.query(db()).resultSize(), 0);
    assert.equal((await teamNow()).pastDueSince, null);
    // The body must be the exact bytes signed: re-serialised JSON with other spacing fails.
    const signedAt = Math.floor(Date.now() / 1000) - 299;
    const ok = await deliverStripe(world.server.url, event, { timestamp: signedAt });
    assert.equal(ok.status, 202, JSON.stringify(ok.body));
  });

  it('sets the plan from the subscription Stripe has now, and goes back to free when it is deleted', async () => {
    world.fake.putSubscription('sub_1', 'cus_acme', priceIds('starter'));
    const created = stripeEvent('customer.subscription.created', world.fake.subscriptions.get('sub_1')!);
    await send(created);
    let t = await teamNow();
    assert.deepEqual([t.plan, t.stripeSubscriptionId, t.subscriptionStatus], ['starter', 'sub_1', 'active']);

    // The owner moves to Pro in the portal; the "updated" event arrives, then the older "created"
    // again (Stripe retries, unordered): the team stays on what Stripe says now.
    world.fake.putSubscription('sub_1', 'cus_acme', priceIds('pro'));
    await send(stripeEvent('customer.subscription.updated', world.fake.subscriptions.get('sub_1')!));
    const redelivered = await deliverStripe(world.server.url, created);
    assert.deepEqual([redelivered.status, redelivered.body], [200, { duplicate: true }]);
    await send(stripeEvent('customer.subscription.created', { ...created.data.object }, created.created - 60));
    t = await teamNow();
    assert.deepEqual([t.plan, t.subscriptionStatus], ['pro', 'active']);

    world.fake.putSubscription('sub_1', 'cus_acme', priceIds('pro'), 'canceled');
    await send(stripeEvent('customer.subscription.deleted', world.fake.subscriptions.get('sub_1')!));
    t = await teamNow();
    assert.deepEqual([t.plan, t.stripeSubscriptionId, t.subscriptionStatus], ['free', null, 'canceled']);
    const actions = (await AuditEvent.query(db()).where({ teamId: team.id, action: 'billing.subscription_changed' }).orderBy('id')).map((e) => [
      e.data.from,
      e.data.to,
    ]);
    assert.deepEqual(actions, [
      ['free', 'starter'],
      ['starter', 'pro'],
      ['pro', 'free'],
    ]);
  });

  it('ignores events of customers that are not Rhone teams', async () => {
    world.fake.putSubscription('sub_x', 'cus_someone_else', priceIds('pro'));
    const row = await send(stripeEvent('customer.subscription.created', world.fake.subscriptions.get('sub_x')!));
    assert.equal(row.error, null);
    assert.equal((await teamNow()).plan, 'free');
  });

  it('marks the team past due on a failed payment, clears it when paid, and ignores an older event arriving late', async () => {
    const now = Math.floor(Date.now() / 1000);
    const failed = stripeEvent('invoice.payment_failed', { id: 'in_1', object: 'invoice', customer: 'cus_acme' }, now - 100);
    await send(failed);
    const t = await teamNow();
    assert.equal(t.pastDueSince?.getTime(), (now - 100) * 1000);
    const olive = await signedIn(world.server.url, 'olive');
    const billing = await olive.get('/api/teams/acme/billing');
    assert.equal(billing.body.pastDue.since, new Date((now - 100) * 1000).toISOString());
    assert.equal(billing.body.pastDue.refusingDeploys, false);
    const notifications = await db()('notifications').where({ teamId: team.id, kind: 'billing.past_due' });
    assert.equal(notifications.length, 1);

    await send(stripeEvent('invoice.paid', { id: 'in_1', object: 'invoice', customer: 'cus_acme' }, now - 10));
    assert.equal((await teamNow()).pastDueSince, null);
    // A retry of the failure, created before the payment, arrives after it: still paid.
    await send(stripeEvent('invoice.payment_failed', { id: 'in_1', object: 'invoice', customer: 'cus_acme' }, now - 50));
    assert.equal((await teamNow()).pastDueSince, null);
    assert.equal((await olive.get('/api/teams/acme/billing')).body.pastDue, null);
  });

  it(`refuses new deploys once the team is past due for more than ${PAST_DUE_GRACE_DAYS} days`, async () => {
    const repo = new TestRepo();
    repo.write('index.html', '<h1>hi</h1>').commit('first');
    const owner = await makeUser('olive');
    await makeApp(owner, team, 'web', { source: { type: 'git', url: repo.url, branch: 'main' } });
    const olive = await signedIn(world.server.url, 'olive');

    await Team.query(db())
      .patch({ pastDueSince: new Date(Date.now() - (PAST_DUE_GRACE_DAYS + 1) * DAY) })
      .where({ id: team.id });
    const refused = await olive.post('/api/apps/web/deploy', {});
    assert.equal(refused.status, 402, JSON.stringify(refused.body));
    assert.equal(refused.body.error, 'past_due');
    assert.match(refused.body.message, /payment has been failing/);
    assert.equal(Number((await db()('deployments').count('* as n'))[0].n), 0, 'a refused deploy writes nothing');

    // Within the grace period a deploy goes through (the banner shows, nothing is refused).
    await Team.query(db())
      .patch({ pastDueSince: new Date(Date.now() - (PAST_DUE_GRACE_DAYS - 1) * DAY) })
      .where({ id: team.id });
    const accepted = await olive.post('/api/apps/web/deploy', {});
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
  });

  it('answers an event type Rhone does not act on without storing it', async () => {
    const res = await deliverStripe(world.server.url, stripeEvent('customer.created', { id: 'cus_new', object: 'customer', customer: null }));
    assert.equal(res.status, 200);
    assert.equal(res.body.ignored, true);
    assert.equal(await WebhookDelivery.query(db()).resultSize(), 0);
  });
});
