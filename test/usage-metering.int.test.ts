// poll-usage against a fake Fly API, on a controlled clock: every poll is told what time it is,
// and the machines' histories are events at chosen instants. Nothing sleeps.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { db } from '../backend/db.ts';
import { getConfig } from '../backend/config.ts';
import { FlyClient } from '../backend/providers/fly/client.ts';
import { pollUsage } from '../backend/billing/metering.ts';
import { BANDWIDTH_LAG_MS, flyPrometheusBandwidth, laggedWindows, localBandwidth } from '../backend/billing/bandwidth.ts';
import { assertCanDeploy, PlanLimitError } from '../backend/billing/limits.ts';
import { queue } from '../jobs/queues.ts';
import { registerSchedules } from '../jobs/schedules.ts';
import { PROCESSORS } from '../jobs/processors/index.ts';
import type { App, Team } from '../backend/models/index.ts';
import { makeApp, makeTeam, makeUser } from './factories.ts';
import { startFakeFlyMachines, type FakeFlyMachines } from './support/fake-fly-machines.ts';

const S = 1000;
const MIN = 60 * S;
const HOUR = 60 * MIN;
/** Friday 20 November 2026, 12:00 UTC. */
const T0 = Date.UTC(2026, 10, 20, 12, 0, 0);
const log = pino({ level: 'silent' });

interface World {
  fly: FakeFlyMachines;
  client: FlyClient;
  team: Team;
  app: App;
  poll(at: number, options?: { pageSize?: number }): ReturnType<typeof pollUsage>;
}

async function world(): Promise<World> {
  const ada = await makeUser('ada');
  const team = await makeTeam(ada, 'acme');
  const made = await makeApp(ada, team, 'web');
  // An app from before Fly app names were stored: its Fly app is the legacy rhone-{slug}.
  await db()('apps').where({ id: made.id }).update({ flyAppName: 'rhone-web' });
  const app = { ...made, flyAppName: 'rhone-web' } as App;
  const fly = await startFakeFlyMachines();
  // No retries: a failed request fails the poll, as it would after the client's retries ran out.
  const client = new FlyClient({ baseUrl: fly.url, token: 'test', retries: 0 });
  const poll = (at: number, options: { pageSize?: number } = {}) =>
    pollUsage({ knex: db(), client, org: 'personal', log, now: () => new Date(at), bandwidth: localBandwidth(client), pageSize: options.pageSize });
  return { fly, client, team, app, poll };
}

/** machine id → [window start as minutes after T0, seconds] */
async function machineSeconds(): Promise<Record<string, [number, number][]>> {
  const rows = (await db()('usageRecords').where({ meter: 'machine_seconds' }).orderBy(['machineId', 'windowStart'])) as {
    machineId: string;
    windowStart: Date;
    quantity: number;
  }[];
  const out: Record<string, [number, number][]> = {};
  for (const r of rows) (out[r.machineId] ??= []).push([(r.windowStart.getTime() - T0) / MIN, r.quantity]);
  return out;
}

async function periodTotal(teamId: string, meter: string, period = '2026-11-01'): Promise<number> {
  const row = await db()('usagePeriodTotals').where({ teamId, meter, period }).first();
  return row ? Number(row.quantity) : 0;
}

describe('poll-usage', () => {
  let w: World;
  beforeEach(async () => {
    w = await world();
  });
  afterEach(async () => {
    await w.fly.close();
  });

  it("counts each machine's started seconds in the window, from its events when it changed, per team and app", async () => {
    w.fly.add({
      id: 'always',
      app: 'rhone-web',
      rhoneApp: w.app.id,
      events: [
        [T0 - HOUR, 'launch', 'created'],
        [T0 - HOUR + S, 'start', 'started'],
      ],
    });
    w.fly.add({
      id: 'brief',
      app: 'rhone-web',
      rhoneApp: w.app.id,
      events: [
        [T0 + 10 * S, 'launch', 'created'],
        [T0 + 60 * S, 'start', 'started'],
        [T0 + 180 * S, 'exit', 'stopped'],
      ],
    });
    w.fly.add({
      id: 'gone',
      app: 'rhone-web',
      rhoneApp: w.app.id,
      region: 'ams',
      events: [
        [T0 - HOUR, 'launch', 'created'],
        [T0 - HOUR + S, 'start', 'started'],
        [T0 + 100 * S, 'destroy', 'destroyed'],
      ],
    });
    // No metadata, but the Fly app name is the one stored on the app.
    w.fly.add({
      id: 'by-name',
      app: 'rhone-web',
      events: [
        [T0 - 10 * MIN, 'launch', 'created'],
        [T0 - 10 * MIN + S, 'start', 'started'],
      ],
    });
    w.fly.add({
      id: 'stranger',
      app: 'someone-else',
      events: [
        [T0 - HOUR, 'launch', 'created'],
        [T0 - HOUR + S, 'start', 'started'],
      ],
    });

    const first = await w.poll(T0);
    assert.equal(first.window, null, 'the first poll only sets where counting starts');
    const second = await w.poll(T0 + 5 * MIN);
    assert.deepEqual(second.window, { from: new Date(T0).toISOString(), to: new Date(T0 + 5 * MIN).toISOString() });
    assert.deepEqual(await machineSeconds(), { always: [[0, 300]], brief: [[0, 120]], gone: [[0, 100]], 'by-name': [[0, 300]] });
    // Only the machines that changed during the window needed their events.
    assert.equal(second.eventLookups, 2);
    assert.equal(w.fly.requests.events, 2);

    const gone = await db()('usageRecords').where({ machineId: 'gone' }).first();
    assert.deepEqual([gone.teamId, gone.appId, gone.region, gone.guestSize], [w.team.id, w.app.id, 'ams', 'shared-cpu-1x']);
    assert.equal(await periodTotal(w.team.id, 'machine_seconds'), 820);

    // Asked again for the same moment: nothing new, nothing twice.
    assert.equal((await w.poll(T0 + 5 * MIN)).window, null);
    assert.equal(await periodTotal(w.team.id, 'machine_seconds'), 820);
  });

  it("a missed poll leaves no hole: the next one counts the whole gap from the machines' events", async () => {
    w.fly.add({
      id: 'always',
      app: 'rhone-web',
      rhoneApp: w.app.id,
      events: [
        [T0 - HOUR, 'launch', 'created'],
        [T0 - HOUR + S, 'start', 'started'],
      ],
    });
    w.fly.add({
      id: 'flappy',
      app: 'rhone-web',
      rhoneApp: w.app.id,
      events: [
        [T0 - HOUR, 'launch', 'created'],
        [T0 - HOUR + S, 'start', 'started'],
        [T0 + 2 * MIN, 'exit', 'stopped'],
      ],
    });
    await w.poll(T0);
    await w.poll(T0 + 5 * MIN);
    // The job was down for an hour; meanwhile flappy ran from +20 to +30 min and again from +50 min on.
    w.fly.event('flappy', T0 + 20 * MIN, 'start', 'started');
    w.fly.event('flappy', T0 + 30 * MIN, 'stop', 'stopping');
    w.fly.event('flappy', T0 + 30 * MIN + 5 * S, 'exit', 'stopped');
    w.fly.event('flappy', T0 + 50 * MIN, 'start', 'started');
    const late = await w.poll(T0 + 65 * MIN);
    assert.deepEqual(late.window, { from: new Date(T0 + 5 * MIN).toISOString(), to: new Date(T0 + 65 * MIN).toISOString() });
    assert.deepEqual(await machineSeconds(), {
      always: [
        [0, 300],
        [5, 3600],
      ],
      flappy: [
        [0, 120],
        [5, 600 + 900],
      ],
    });
    // Every second of the 65 minutes, once.
    assert.equal(await periodTotal(w.team.id, 'machine_seconds'), 65 * 60 + 120 + 1500);
  });

  it('a poll that fails half-way is counted again over the same window, each machine once', async () => {
    for (const id of ['a', 'b', 'c', 'd'])
      w.fly.add({
        id,
        app: 'rhone-web',
        rhoneApp: w.app.id,
        events: [
          [T0 - HOUR, 'launch', 'created'],
          [T0 - HOUR + S, 'start', 'started'],
        ],
      });
    await w.poll(T0, { pageSize: 2 });
    w.fly.failOnce(/\/machines\?.*cursor=2/);
    await assert.rejects(w.poll(T0 + 5 * MIN, { pageSize: 2 }), /injected failure/);
    // The first page was recorded before the second failed.
    assert.deepEqual(Object.keys(await machineSeconds()).sort(), ['a', 'b']);
    // The retry, two minutes later, still counts [T0, T0+5min): the window was fixed before counting.
    const retry = await w.poll(T0 + 7 * MIN, { pageSize: 2 });
    assert.deepEqual(retry.window, { from: new Date(T0).toISOString(), to: new Date(T0 + 5 * MIN).toISOString() });
    assert.equal(retry.records, 2, 'only the machines the failed poll had not recorded');
    await w.poll(T0 + 10 * MIN, { pageSize: 2 });
    const seconds = await machineSeconds();
    for (const id of ['a', 'b', 'c', 'd'])
      assert.deepEqual(
        seconds[id],
        [
          [0, 300],
          [5, 300],
        ],
        id,
      );
    assert.equal(await periodTotal(w.team.id, 'machine_seconds'), 4 * 600);
  });

  it('cuts a window at UTC midnight, so each day (and month) gets its own share', async () => {
    const T1 = Date.UTC(2026, 10, 30, 23, 50);
    w.fly.add({
      id: 'always',
      app: 'rhone-web',
      rhoneApp: w.app.id,
      events: [
        [T1 - HOUR, 'launch', 'created'],
        [T1 - HOUR + S, 'start', 'started'],
      ],
    });
    await w.poll(T1);
    await w.poll(T1 + 20 * MIN);
    const rows = (await db()('usageRecords').where({ machineId: 'always' }).orderBy('windowStart')) as {
      windowStart: Date;
      windowEnd: Date;
      quantity: number;
    }[];
    assert.deepEqual(
      rows.map((r) => [r.windowStart.toISOString(), r.windowEnd.toISOString(), r.quantity]),
      [
        ['2026-11-30T23:50:00.000Z', '2026-12-01T00:00:00.000Z', 600],
        ['2026-12-01T00:00:00.000Z', '2026-12-01T00:10:00.000Z', 600],
      ],
    );
    assert.equal(await periodTotal(w.team.id, 'machine_seconds', '2026-11-01'), 600);
    assert.equal(await periodTotal(w.team.id, 'machine_seconds', '2026-12-01'), 600);
  });

  it('records the bytes the local router sent per app, as the increase of its counter', async () => {
    w.fly.add({
      id: 'always',
      app: 'rhone-web',
      rhoneApp: w.app.id,
      events: [
        [T0 - HOUR, 'launch', 'created'],
        [T0 - HOUR + S, 'start', 'started'],
      ],
    });
    await w.poll(T0);
    w.fly.bytesOut.set('rhone-web', 5000);
    await w.poll(T0 + 5 * MIN);
    w.fly.bytesOut.set('rhone-web', 8000);
    await w.poll(T0 + 10 * MIN);
    const rows = (await db()('usageRecords').where({ meter: 'bandwidth' }).orderBy('windowStart')) as { appId: string; quantity: number }[];
    assert.deepEqual(
      rows.map((r) => [r.appId, r.quantity]),
      [
        [w.app.id, 5000],
        [w.app.id, 3000],
      ],
    );
    assert.equal(await periodTotal(w.team.id, 'bandwidth'), 8000);
  });

  it("asks Fly's Prometheus for each app's bytes out over the window, in production", async () => {
    const asked: { url: URL; auth: string | null }[] = [];
    const fakeFetch = (async (input: URL | RequestInfo, init?: RequestInit) => {
      asked.push({ url: new URL(String(input)), auth: new Headers(init?.headers).get('authorization') });
      return new Response(
        JSON.stringify({
          status: 'success',
          data: {
            resultType: 'vector',
            result: [
              { metric: { app: 'rhone-web' }, value: [T0 / 1000, '12345.6'] },
              { metric: { app: 'not-ours' }, value: [T0 / 1000, '99'] },
            ],
          },
        }),
      );
    }) as typeof fetch;
    const source = flyPrometheusBandwidth({ baseUrl: 'https://api.fly.example', org: 'acme-org', token: 'FlyV1 fm2_secret', fetch: fakeFetch });
    const teams = await source.record(db(), [{ flyApp: 'rhone-web', appId: w.app.id, teamId: w.team.id }], [[T0, T0 + 5 * MIN]]);
    assert.deepEqual(teams, [w.team.id]);
    assert.equal(asked.length, 1);
    assert.equal(asked[0].url.origin + asked[0].url.pathname, 'https://api.fly.example/prometheus/acme-org/api/v1/query');
    assert.equal(asked[0].url.searchParams.get('query'), 'sum by (app) (increase(fly_edge_data_out[300s]))');
    // Queried two minutes behind the poll, so the samples of the window's last moments are in.
    assert.equal(asked[0].url.searchParams.get('time'), String((T0 + 5 * MIN - BANDWIDTH_LAG_MS) / 1000));
    const [recorded] = (await db()('usageRecords').where({ meter: 'bandwidth' }).select('windowStart', 'windowEnd')) as {
      windowStart: Date;
      windowEnd: Date;
    }[];
    assert.deepEqual([recorded.windowStart.getTime(), recorded.windowEnd.getTime()], [T0 - BANDWIDTH_LAG_MS, T0 + 5 * MIN - BANDWIDTH_LAG_MS]);
    assert.equal(asked[0].auth, 'FlyV1 fm2_secret');
    assert.equal(await periodTotal(w.team.id, 'bandwidth'), 12346);
    // An error from the metrics API fails the poll (it is retried over the same window) rather than recording zero.
    const failing = flyPrometheusBandwidth({
      baseUrl: 'https://api.fly.example',
      org: 'acme-org',
      token: 't',
      fetch: (async () => new Response(JSON.stringify({ status: 'error', error: 'bad query' }), { status: 400 })) as typeof fetch,
    });
    await assert.rejects(
      failing.record(db(), [{ flyApp: 'rhone-web', appId: w.app.id, teamId: w.team.id }], [[T0, T0 + 5 * MIN]]),
      /Fly metrics query failed \(400\): bad query/,
    );
  });

  it('runs bandwidth windows behind the poll, still cut at UTC midnight, and contiguous from poll to poll', () => {
    const midnight = Date.UTC(2026, 10, 21);
    const first = laggedWindows([[midnight - 5 * MIN, midnight]], 2 * MIN);
    const second = laggedWindows([[midnight, midnight + 5 * MIN]], 2 * MIN);
    assert.deepEqual(first, [[midnight - 7 * MIN, midnight - 2 * MIN]]);
    assert.deepEqual(second, [
      [midnight - 2 * MIN, midnight],
      [midnight, midnight + 3 * MIN],
    ]);
  });

  it('alerts the owners at 75%, 90% and 100% of a quota, once each, and refuses new deploys at 100% on free', async () => {
    w.fly.add({
      id: 'always',
      app: 'rhone-web',
      rhoneApp: w.app.id,
      events: [
        [T0 - HOUR, 'launch', 'created'],
        [T0 - HOUR + S, 'start', 'started'],
      ],
    });
    await w.poll(T0);
    assert.equal((await w.poll(T0 + 80 * HOUR)).alerts, 1);
    assert.equal((await w.poll(T0 + 80 * HOUR + 5 * MIN)).alerts, 0, 'not again');
    await assertCanDeploy(db(), w.team, { build: true, now: new Date(T0 + 80 * HOUR) });
    assert.equal((await w.poll(T0 + 101 * HOUR)).alerts, 2);
    const notes = (await db()('notifications').where({ teamId: w.team.id }).orderBy('id')) as {
      minRole: string;
      userId: string | null;
      dedupeKey: string;
      title: string;
      body: string;
    }[];
    assert.deepEqual(
      notes.map((n) => [n.dedupeKey, n.minRole, n.userId]),
      [
        ['quota:machine_seconds:2026-11:75', 'owner', null],
        ['quota:machine_seconds:2026-11:90', 'owner', null],
        ['quota:machine_seconds:2026-11:100', 'owner', null],
      ],
    );
    assert.match(notes[2].body, /101 machine hours of the 100 machine hours/);
    assert.match(notes[2].body, /running apps keep running/);
    const audit = (await db()('auditEvents').where({ teamId: w.team.id, action: 'usage.quota_alert' })) as unknown[];
    assert.equal(audit.length, 3);
    // Free has no overage: at 100% new deploys (rollbacks too) are refused, with the way out.
    for (const build of [true, false]) {
      await assert.rejects(assertCanDeploy(db(), w.team, { build, now: new Date(T0 + 101 * HOUR) }), (err: unknown) => {
        assert.ok(err instanceof PlanLimitError);
        assert.equal(err.status, 402);
        assert.equal(
          err.message,
          'Your team used 101 of the 100 machine hours the Free plan includes this month, so new deploys are refused (running apps keep running); upgrade to Starter in Usage & billing, or wait until December 1, when the quota resets.',
        );
        return true;
      });
    }
  });
});

describe('poll-usage schedule', () => {
  it('is a job scheduler every five minutes, registered with the others, with a processor', async () => {
    const ctx = { connection: { url: getConfig().redisUrl, maxRetriesPerRequest: null }, prefix: `test-${randomUUID()}` };
    const ids = await registerSchedules(ctx);
    assert.ok(ids.includes('poll-usage'));
    const scheduler = await queue(ctx, 'pollUsage').getJobScheduler('poll-usage');
    assert.equal(scheduler?.every, 5 * 60_000);
    // Registering again (every scheduler process does, every few minutes) leaves one scheduler.
    await registerSchedules(ctx);
    assert.equal((await queue(ctx, 'pollUsage').getJobSchedulers()).length, 1);
    assert.ok(PROCESSORS.pollUsage, 'a worker runs poll-usage');
  });
});
