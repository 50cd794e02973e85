// The usage API, the spend cap, notifications, and the plan limits where they bite, through the
// real api. Usage is written with insertUsage, the one path poll-usage and the build stage use.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { db } from '../backend/db.ts';
import { getConfig } from '../backend/config.ts';
import { insertUsage, recordBuild } from '../backend/billing/ledger.ts';
import { assertPlanAllows, PlanLimitError } from '../backend/billing/limits.ts';
import { periodContaining } from '../backend/billing/usage.ts';
import type { App, Plan, Team, User } from '../backend/models/index.ts';
import { makeApp, makeTeam, makeUser } from './factories.ts';
import { TestRepo } from './support/git-repo.ts';
import { Client, signedIn, startTestServer, type Res, type TestServer } from './http.ts';

const HOUR = 3600;
const GB = 1_000_000_000;

let server: TestServer;
let repo: TestRepo;
before(async () => {
  repo = new TestRepo();
  repo.write('index.html', '<h1>hi</h1>').commit('first');
  server = await startTestServer({ queues: { connection: { url: getConfig().redisUrl, maxRetriesPerRequest: null }, prefix: `test-${randomUUID()}` } });
});
after(async () => {
  await server.close();
});

interface World {
  olive: User;
  team: Team;
  app: App;
  as: Client;
}

async function world(plan: Plan = 'free'): Promise<World> {
  const olive = await makeUser('olive');
  const team = await makeTeam(olive, 'acme');
  const app = await makeApp(olive, team, 'web', { source: { type: 'git', url: repo.url, branch: 'main' } });
  await setPlan(team, plan);
  return { olive, team, app, as: await signedIn(server.url, 'olive') };
}

const setPlan = (team: Team, plan: Plan) => db()('teams').where({ id: team.id }).update({ plan });

/** Usage this month, in record units. */
async function use(w: World, meter: 'machine_seconds' | 'bandwidth' | 'builds', quantity: number, at = new Date()) {
  await insertUsage(db(), [
    { teamId: w.team.id, appId: w.app.id, machineId: `m-${randomUUID()}`, meter, windowStart: at, windowEnd: new Date(at.getTime() + 1000), quantity },
  ]);
}

function refused(res: Res, status: number, error: string, message: string | RegExp) {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(res.body.error, error);
  if (typeof message === 'string') assert.equal(res.body.message, message);
  else assert.match(res.body.message, message);
}

const resetDay = () => periodContaining(new Date()).end.toLocaleString('en-US', { month: 'long', day: 'numeric', timeZone: 'UTC' });
const count = async (table: string) => Number((await db()(table).count<{ count: string }[]>('* as count'))[0].count);

describe('usage API', () => {
  it('shows totals per meter, per app and per day, the quota, overage, cost so far and a forecast', async () => {
    const w = await world('starter');
    const oct = (day: number, hour = 12) => new Date(Date.UTC(2026, 9, day, hour));
    await use(w, 'machine_seconds', 300 * HOUR, oct(2));
    await use(w, 'machine_seconds', 300 * HOUR, oct(3));
    await use(w, 'bandwidth', 40 * GB, oct(3));
    await recordBuild(db(), { teamId: w.team.id, appId: w.app.id, deploymentId: randomUUID(), startedAt: oct(3, 10), endedAt: oct(3, 11) });
    // September's usage is not October's.
    await use(w, 'machine_seconds', 7 * HOUR, new Date(Date.UTC(2026, 8, 30, 23)));
    // A past period: its forecast is what was used.
    const res = await w.as.get('/api/teams/acme/usage?period=2026-10');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const b = res.body;
    assert.deepEqual(
      [b.team, b.period, b.periodStart, b.periodEnd, b.plan.id, b.stripe.configured],
      ['acme', '2026-10', '2026-10-01T00:00:00.000Z', '2026-11-01T00:00:00.000Z', 'starter', false],
    );
    const hours = b.meters.find((m: { meter: string }) => m.meter === 'machine_seconds');
    // 600 h used of 500: 100 h over at $0.05 = $5.00.
    assert.deepEqual(
      [hours.used, hours.included, hours.overage, hours.overageCents, hours.percent, hours.kind],
      [600 * HOUR, 500 * HOUR, 100 * HOUR, 500, 120, 'overage'],
    );
    assert.deepEqual(
      b.meters.map((m: { meter: string; used: number }) => [m.meter, m.used]),
      [
        ['machine_seconds', 600 * HOUR],
        ['bandwidth', 40 * GB],
        ['builds', 1],
      ],
    );
    assert.deepEqual(b.cost, {
      currency: 'usd',
      baseCents: 2000,
      overageCents: 500,
      totalCents: 2500,
      forecastCents: 2500,
      forecast: { machine_seconds: 600 * HOUR, bandwidth: 40 * GB, builds: 1 },
    });
    assert.deepEqual(b.apps, [{ app: { id: w.app.id, slug: 'web', name: 'web' }, usage: { machine_seconds: 600 * HOUR, bandwidth: 40 * GB, builds: 1 } }]);
    assert.deepEqual(b.days, [
      { date: '2026-10-02', usage: { machine_seconds: 300 * HOUR, bandwidth: 0, builds: 0 } },
      { date: '2026-10-03', usage: { machine_seconds: 300 * HOUR, bandwidth: 40 * GB, builds: 1 } },
    ]);
    // The build's window is its run time.
    const build = await db()('usageRecords').where({ meter: 'builds' }).first();
    assert.equal(build.windowEnd.getTime() - build.windowStart.getTime(), 3600_000);
  });

  it('forecasts the current period linearly and defaults to it', async () => {
    const w = await world('free');
    await use(w, 'builds', 10);
    const b = (await w.as.get('/api/teams/acme/usage')).body;
    assert.equal(b.period, periodContaining(new Date()).key);
    assert.ok(b.elapsed > 0 && b.elapsed <= 1);
    // 10 builds so far, stretched over the whole month (elapsed is rounded in the answer).
    assert.ok(Math.abs(b.cost.forecast.builds - 10 / b.elapsed) <= 0.01 * b.cost.forecast.builds + 1, JSON.stringify(b.cost));
  });

  it('refuses a period that is not a month, and a bad spend cap, writing nothing', async () => {
    const w = await world();
    for (const period of ['2026-13', 'nov', '2026-1', '2026-11-01']) {
      refused(await w.as.get(`/api/teams/acme/usage?period=${period}`), 400, 'validation_error', /YYYY-MM/);
    }
    const audits = await count('auditEvents');
    for (const body of [{ capCents: -1 }, { capCents: 12.5 }, { capCents: '100' }, {}, { capCents: 100, extra: 1 }]) {
      refused(await w.as.put('/api/teams/acme/billing/spend-cap', body), 400, 'validation_error', /capCents|extra/);
    }
    assert.equal(await count('auditEvents'), audits);
    assert.equal((await db()('teams').where({ id: w.team.id }).first()).spendCapCents, null);
  });
});

describe('plan limits', () => {
  it('refuses the 51st build of the month on free, saying which limit and how to lift it; a rollback still runs', async () => {
    const w = await world('free');
    await use(w, 'builds', 50);
    const deployments = await count('deployments');
    refused(
      await w.as.post('/api/apps/web/deploy', {}),
      402,
      'plan_limit',
      `Your team used 50 of the 50 builds the Free plan includes this month, so new builds are refused; upgrade to Starter in Usage & billing, or wait until ${resetDay()}, when the quota resets.`,
    );
    assert.equal(await count('deployments'), deployments, 'nothing written');
    // A rollback builds nothing: the build quota does not apply.
    const [live] = (await db()('deployments')
      .insert({
        appId: w.app.id,
        number: 1,
        status: 'live',
        trigger: 'manual',
        configSnapshot: JSON.stringify({ slug: 'web', settings: {}, env: {} }),
        image: 'rhone-local/web:one',
      })
      .returning('id')) as { id: string }[];
    assert.equal((await w.as.post(`/api/deployments/${live.id}/rollback`, {})).status, 202);
    // On Starter, builds beyond the quota are overage, not refused.
    await setPlan(w.team, 'starter');
    assert.equal((await w.as.post('/api/apps/web/deploy', {})).status, 202);
  });

  it('counts builds still running against the quota', async () => {
    const w = await world('free');
    await use(w, 'builds', 49);
    const other = await makeApp(w.olive, w.team, 'worker', { source: { type: 'git', url: repo.url, branch: 'main' } });
    await db()('deployments').insert({ appId: other.id, number: 1, status: 'building', trigger: 'manual', configSnapshot: JSON.stringify({}) });
    refused(await w.as.post('/api/apps/web/deploy', {}), 402, 'plan_limit', /used 50 of the 50 builds/);
  });

  it('lets only one of two deploys racing for the last build of the month through', async () => {
    const w = await world('free');
    await use(w, 'builds', 49);
    await makeApp(w.olive, w.team, 'worker', { source: { type: 'git', url: repo.url, branch: 'main' } });
    const before = await count('deployments');
    const answers = await Promise.all([w.as.post('/api/apps/web/deploy', {}), w.as.post('/api/apps/worker/deploy', {})]);
    assert.deepEqual(answers.map((r) => r.status).sort(), [202, 402], JSON.stringify(answers.map((r) => r.body)));
    assert.match(answers.find((r) => r.status === 402)!.body.message, /used 50 of the 50 builds/);
    assert.equal(await count('deployments'), before + 1);
  });

  it('refuses new deploys at the spend cap, and an owner lifts it', async () => {
    const w = await world('starter');
    await use(w, 'machine_seconds', 600 * HOUR); // $5.00 over
    const member = await makeUser('mia');
    await db()('teamMembers').insert({ teamId: w.team.id, userId: member.id, role: 'member' });
    const mia = await signedIn(server.url, 'mia');
    refused(await mia.put('/api/teams/acme/billing/spend-cap', { capCents: 1000 }), 403, 'forbidden', /owner/);
    const set = await w.as.put('/api/teams/acme/billing/spend-cap', { capCents: 400 });
    assert.deepEqual([set.status, set.body], [200, { capCents: 400 }]);
    refused(
      await mia.post('/api/apps/web/deploy', {}),
      402,
      'spend_cap',
      `Your team's overage this month ($5.00) reached the $4.00 spend cap an owner set, so new deploys are refused (running apps keep running); an owner can raise or remove the cap in Usage & billing, or wait until ${resetDay()}, when the quota resets.`,
    );
    // A rollback is still allowed at the cap: it builds nothing and runs no more machines.
    const [live] = (await db()('deployments')
      .insert({
        appId: w.app.id,
        number: 1,
        status: 'live',
        trigger: 'manual',
        configSnapshot: JSON.stringify({ slug: 'web', settings: {}, env: {} }),
        image: 'rhone-local/web:one',
      })
      .returning('id')) as { id: string }[];
    assert.equal((await mia.post(`/api/deployments/${live.id}/rollback`, {})).status, 202);
    // Setting a cap already passed alerts the owners at once: 75, 90 and 100%.
    const keys = ((await db()('notifications').where({ teamId: w.team.id }).orderBy('id')) as { dedupeKey: string }[]).map((n) => n.dedupeKey);
    const month = periodContaining(new Date()).key;
    assert.deepEqual(keys, [
      `quota:machine_seconds:${month}:75`,
      `quota:machine_seconds:${month}:90`,
      `quota:machine_seconds:${month}:100`,
      `spend_cap:${month}:400:75`,
      `spend_cap:${month}:400:90`,
      `spend_cap:${month}:400:100`,
    ]);
    assert.equal((await db()('auditEvents').where({ action: 'billing.spend_cap_set' }).first()).data.to, 400);
    const usage = (await mia.get('/api/teams/acme/usage')).body;
    assert.deepEqual(usage.spendCap, { capCents: 400, percent: 125, reached: true });
    assert.equal((await w.as.put('/api/teams/acme/billing/spend-cap', { capCents: null })).status, 200);
    assert.equal((await mia.post('/api/apps/web/deploy', {})).status, 202);
  });

  it('allows one member on free and five on starter, counting open invitations, and checks again on accept', async () => {
    const w = await world('free');
    refused(
      await w.as.post('/api/teams/acme/invitations', { login: 'bob', role: 'member' }),
      402,
      'plan_limit',
      'The Free plan includes 1 member and team "acme" has 1 member; upgrade to Starter in Usage & billing for more members.',
    );
    assert.equal(await count('invitations'), 0);
    await setPlan(w.team, 'starter');
    for (const login of ['bob', 'carl', 'dora']) {
      const invited = await w.as.post('/api/teams/acme/invitations', { login, role: 'member' });
      assert.equal(invited.status, 201);
      const c = await signedIn(server.url, login);
      assert.equal((await c.post(`/api/invitations/${invited.body.id}/accept`)).status, 200);
    }
    assert.equal((await w.as.post('/api/teams/acme/invitations', { login: 'emma', role: 'member' })).status, 201);
    // 4 members and 1 open invitation: the sixth seat is not there.
    refused(
      await w.as.post('/api/teams/acme/invitations', { login: 'finn', role: 'member' }),
      402,
      'plan_limit',
      'The Starter plan includes 5 members and team "acme" has 4 members and 1 open invitation; upgrade to Pro in Usage & billing for more members, or revoke an open invitation.',
    );
    // The team went back to free before emma accepted.
    await setPlan(w.team, 'free');
    const emma = await signedIn(server.url, 'emma');
    const [invitation] = (await emma.get('/api/invitations')).body.items;
    refused(
      await emma.post(`/api/invitations/${invitation.id}/accept`, {}),
      402,
      'plan_limit',
      /The Free plan includes 1 member and team "acme" has 4 members/,
    );
    assert.equal((await db()('teamMembers').where({ teamId: w.team.id })).length, 4);
  });

  it("keeps a team's apps in one region below Pro", async () => {
    const w = await world('starter');
    const body = (slug: string, region: string) => ({ name: slug, slug, region, source: { type: 'git', url: repo.url, branch: 'main' } });
    assert.equal((await w.as.post('/api/teams/acme/apps', body('same', 'iad'))).status, 201);
    refused(
      await w.as.post('/api/teams/acme/apps', body('elsewhere', 'ams')),
      402,
      'plan_limit',
      'The Starter plan runs a team\'s apps in one region, and team "acme" already uses iad; choose iad, or upgrade to Pro in Usage & billing to run apps in more regions.',
    );
    refused(await w.as.patch('/api/apps/web', { region: 'ams' }), 402, 'plan_limit', /already uses iad/);
    assert.equal((await db()('apps').where({ region: 'ams' })).length, 0);
    await setPlan(w.team, 'pro');
    assert.equal((await w.as.post('/api/teams/acme/apps', body('elsewhere', 'ams'))).status, 201);
  });

  it('tells the domains code whether custom domains are included', () => {
    assert.throws(
      () => assertPlanAllows({ plan: 'free' }, 'customDomains'),
      (err: unknown) =>
        err instanceof PlanLimitError &&
        err.status === 402 &&
        err.message === 'Custom domains are not included in the Free plan; upgrade to Starter in Usage & billing to use them.',
    );
    assert.doesNotThrow(() => assertPlanAllows({ plan: 'starter' }, 'customDomains'));
    assert.throws(() => assertPlanAllows({ plan: 'starter' }, 'wildcardDomains'), /upgrade to Pro/);
  });
});

describe('notifications', () => {
  it("lists the caller's notifications newest first, in pages, with the unread count; marks them read", async () => {
    const w = await world('pro');
    for (let i = 1; i <= 3; i++) await db()('notifications').insert({ teamId: w.team.id, minRole: 'owner', kind: 'quota', title: `n${i}`, dedupeKey: `k${i}` });
    const first = (await w.as.get('/api/teams/acme/notifications?limit=2')).body;
    assert.deepEqual([first.items.map((n: { title: string }) => n.title), first.unread], [['n3', 'n2'], 3]);
    const second = (await w.as.get(`/api/teams/acme/notifications?limit=2&cursor=${first.next}`)).body;
    assert.deepEqual([second.items.map((n: { title: string }) => n.title), second.next], [['n1'], null]);
    const read = await w.as.post(`/api/teams/acme/notifications/${first.items[0].id}/read`, {});
    assert.deepEqual([read.status, read.body.read], [200, true]);
    assert.equal((await w.as.get('/api/teams/acme/notifications?unread=true')).body.items.length, 2);
    refused(await w.as.post('/api/teams/acme/notifications/999999/read', {}), 404, 'not_found', /Notification 999999/);
    refused(await w.as.post('/api/teams/acme/notifications/abc/read', {}), 400, 'validation_error', /notification id/);
  });
});
