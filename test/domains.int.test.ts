// Custom domains through the API, on the local runtime (what `npm start` runs) and against a fake
// of Fly's certificates API (what production runs), with the certificate checker on a controlled
// clock: backoff, Let's Encrypt's rate limit, going active, giving up after 72 hours.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Job } from 'bullmq';
import { enqueue } from '../jobs/queues.ts';
import { startWorkers } from '../jobs/worker.ts';
import { rm } from 'node:fs/promises';
import { pino } from 'pino';
import { db } from '../backend/db.ts';
import { getConfig, type Config } from '../backend/config.ts';
import { App, AuditEvent, Domain, Team, type User } from '../backend/models/index.ts';
import { checkCertificates } from '../jobs/processors/check-certificates.ts';
import { SCHEDULES } from '../jobs/schedules.ts';
import { importImage } from '../local/images.ts';
import { startLocalRuntime, type LocalRuntime } from '../local/main.ts';
import { addMember, makeApp, makeTeam, makeUser } from './factories.ts';
import { Client, signedIn, startTestServer, type TestServer } from './http.ts';
import { createToken } from '../backend/commands/tokens.ts';
import { appConfig, FIXTURE_APP, FlyApi, healthy, tempDataDir, viaRouter } from './local-helpers.ts';
import { DEFAULT_STEPS, startFakeFly, type FakeFly } from './support/fake-fly-certificates.ts';

const MINUTE = 60_000;
const log = pino({ level: 'silent' });
const later = (base: Date, ms: number) => new Date(base.getTime() + ms);

interface World {
  olive: User;
  team: Team;
  app: App;
}

async function world(plan: Team['plan'] = 'free'): Promise<World> {
  const olive = await makeUser('olive');
  const team = await makeTeam(olive, 'acme');
  await db()('teams').where({ id: team.id }).update({ plan });
  const mia = await makeUser('mia');
  await addMember(team, mia, 'member');
  const made = await makeApp(olive, team, 'shop');
  // An app from before Fly app names were stored: its Fly app is the legacy rhone-{slug}, the name these tests use.
  const app = await App.query(db()).patchAndFetchById(made.id, { flyAppName: 'rhone-shop' });
  return { olive, team: await Team.query(db()).findById(team.id).throwIfNotFound(), app };
}

const domains = () => Domain.query(db()).orderBy('hostname');

describe('custom domains', function () {
  this.timeout(30_000);

  describe('on the local runtime', () => {
    let local: LocalRuntime;
    let dataDir: string;
    let server: TestServer;
    let config: Config;
    /** What the fake DNS answers for each hostname; absent means it does not resolve. */
    let dns: Map<string, string[]>;
    let olive: Client;

    beforeEach(async () => {
      dns = new Map();
      dataDir = tempDataDir();
      local = await startLocalRuntime({ dataDir, machinesPort: 0, routerPort: 0, resolveHost: async (h) => dns.get(h) ?? [] });
      await importImage(dataDir, 'fixture', 'v1', FIXTURE_APP, { cmd: [process.execPath, 'server.mjs'] });
      config = { ...getConfig(), dataDir, machinesPort: Number(new URL(local.machinesUrl).port), routerPort: Number(new URL(local.routerUrl).port) };
      server = await startTestServer({ config });
    });
    afterEach(async () => {
      await server.close();
      await local.close();
      await rm(dataDir, { recursive: true, force: true });
    });

    /** The app deployed: one healthy machine of rhone-shop behind the router. */
    async function deployed(): Promise<void> {
      const api = new FlyApi(local.machinesUrl, `Bearer ${local.token}`);
      await api.createApp('rhone-shop');
      // Machines Rhone made carry the app's id: the mark of a Fly app made before apps had their own network.
      const { id } = await db()('apps').where({ slug: 'shop' }).first();
      const m = await api.createMachine('rhone-shop', { config: appConfig({ metadata: { rhone_app: id } }) });
      await healthy(api, 'rhone-shop', m.id);
    }

    it('serves the app on www.shop.localhost once added, and stops when it is removed', async () => {
      await world();
      await deployed();
      olive = await signedIn(server.url, 'olive');
      assert.equal((await viaRouter(local, 'www.shop.localhost')).status, 404);

      const added = await olive.post('/api/apps/shop/domains', { hostname: 'WWW.Shop.localhost.' });
      assert.equal(added.status, 201, JSON.stringify(added.body));
      assert.equal(added.body.hostname, 'www.shop.localhost');
      assert.equal(added.body.status, 'active', 'a .localhost name is active at once');
      assert.equal(added.body.url, `http://www.shop.localhost:${config.routerPort}`);
      assert.deepEqual(
        added.body.dnsRecords.map((r: { type: string; value: string }) => `${r.type} ${r.value}`),
        ['A 127.0.0.1', 'AAAA ::1'],
      );

      const served = await viaRouter(local, 'www.shop.localhost', '/health');
      assert.equal(served.status, 200);
      assert.equal(served.body, 'ok');
      assert.deepEqual(
        (await olive.get('/api/apps/shop/domains')).body.items.map((d: { hostname: string }) => d.hostname),
        ['www.shop.localhost'],
      );
      assert.equal((await olive.get('/api/apps/shop/domains/www.shop.localhost')).body.status, 'active');
      const audit = await AuditEvent.query(db()).whereIn('action', ['domain.added', 'domain.activated']).orderBy('id');
      assert.deepEqual(
        audit.map((e) => e.action),
        ['domain.added', 'domain.activated'],
      );

      const removed = await olive.delete('/api/apps/shop/domains/www.shop.localhost');
      assert.equal(removed.status, 204, JSON.stringify(removed.body));
      assert.equal((await viaRouter(local, 'www.shop.localhost', '/health')).status, 404);
      assert.deepEqual(await domains(), []);
      assert.equal((await olive.get('/api/apps/shop/domains/www.shop.localhost')).status, 404);
      // The app's own address still serves.
      assert.equal((await viaRouter(local, 'shop.localhost', '/health')).status, 200);
    });

    it('serves a wildcard on every name under it', async () => {
      await world('pro');
      await deployed();
      olive = await signedIn(server.url, 'olive');
      const added = await olive.post('/api/apps/shop/domains', { hostname: '*.shop.localhost' });
      assert.equal(added.status, 201, JSON.stringify(added.body));
      assert.equal(added.body.wildcard, true);
      assert.equal((await viaRouter(local, 'anything.shop.localhost', '/health')).status, 200);
      assert.equal((await viaRouter(local, 'deeper.anything.shop.localhost', '/health')).status, 404);
    });

    it('refuses bad hostnames with a message each, and writes nothing', async () => {
      await world('starter');
      olive = await signedIn(server.url, 'olive');
      const cases: [unknown, number, string, RegExp][] = [
        [{}, 400, 'validation_error', /hostname: is required/],
        [{ hostname: '' }, 400, 'validation_error', /is required/],
        [{ hostname: 'https://shop.example.com/' }, 400, 'validation_error', /hostname only.*no scheme/],
        [{ hostname: 'shop.example.com:8080' }, 400, 'validation_error', /no scheme \(https:\/\/\), port/],
        [{ hostname: 'example' }, 400, 'validation_error', /needs a dot/],
        [{ hostname: 'exa mple.com' }, 400, 'validation_error', /not a valid domain name/],
        [{ hostname: '-bad.example.com' }, 400, 'validation_error', /invalid label "-bad"/],
        [{ hostname: 'a..example.com' }, 400, 'validation_error', /empty label/],
        [{ hostname: `${'a'.repeat(64)}.example.com` }, 400, 'validation_error', /longer than 63/],
        [{ hostname: '192.168.1.10' }, 400, 'validation_error', /IP address/],
        [{ hostname: 'www.*.example.com' }, 400, 'validation_error', /"\*" only as its whole first label/],
        [{ hostname: '*.com' }, 400, 'validation_error', /wildcard needs a domain of at least two labels/],
        [{ hostname: 'shop.localhost' }, 400, 'validation_error', /two labels deep or more, such as www\.shop\.localhost/],
        [{ hostname: 'localhost' }, 400, 'validation_error', /needs a dot/],
        [{ hostname: 'www.shop.localhost', extra: 1 }, 400, 'validation_error', /unknown field/],
        // Starter has custom domains but not wildcards (billing/limits.ts).
        [{ hostname: '*.example.com' }, 402, 'plan_limit', /Wildcard domains are not included in the Starter plan/],
      ];
      for (const [body, status, error, message] of cases) {
        const res = await olive.post('/api/apps/shop/domains', body);
        assert.equal(res.status, status, `${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.error, error, JSON.stringify(body));
        assert.match(res.body.message, message, JSON.stringify(body));
      }
      assert.deepEqual(await domains(), []);
      assert.equal(await AuditEvent.query(db()).where('action', 'like', 'domain.%').resultSize(), 0);
    });

    it('needs a paid plan, except for .localhost names; members read, admins and owners change', async () => {
      await world('free');
      olive = await signedIn(server.url, 'olive');
      const paid = await olive.post('/api/apps/shop/domains', { hostname: 'shop.example.com' });
      assert.equal(paid.status, 402);
      assert.match(paid.body.message, /Custom domains are not included in the Free plan; upgrade to Starter/);
      assert.equal((await olive.post('/api/apps/shop/domains', { hostname: 'try.shop.localhost' })).status, 201);
      const mia = await signedIn(server.url, 'mia');
      assert.equal((await mia.get('/api/apps/shop/domains')).body.items.length, 1);
      const refused = await mia.post('/api/apps/shop/domains', { hostname: 'two.shop.localhost' });
      assert.equal(refused.status, 403);
      assert.equal((await mia.delete('/api/apps/shop/domains/try.shop.localhost')).status, 403);
      assert.equal((await domains()).length, 1);
    });

    it('a hostname belongs to one app, and an app has at most 10', async () => {
      const w = await world('starter');
      await makeApp(w.olive, w.team, 'journal');
      olive = await signedIn(server.url, 'olive');
      for (let i = 0; i < 10; i++) assert.equal((await olive.post('/api/apps/shop/domains', { hostname: `n${i}.shop.localhost` })).status, 201);
      const eleventh = await olive.post('/api/apps/shop/domains', { hostname: 'n10.shop.localhost' });
      assert.equal(eleventh.status, 409);
      assert.equal(eleventh.body.error, 'domain_limit');
      assert.match(eleventh.body.message, /at most 10 custom domains and shop has 10; remove one first/);
      const again = await olive.post('/api/apps/shop/domains', { hostname: 'n1.shop.localhost' });
      assert.deepEqual([again.status, again.body.error], [409, 'domain_exists']);
      const elsewhere = await olive.post('/api/apps/journal/domains', { hostname: 'n1.shop.localhost' });
      assert.deepEqual([elsewhere.status, elsewhere.body.error], [409, 'domain_taken']);
      assert.equal((await domains()).length, 10);
    });

    it('any other hostname goes active when its DNS points here, found by the checker', async () => {
      const w = await world('starter');
      await deployed();
      olive = await signedIn(server.url, 'olive');
      const added = await olive.post('/api/apps/shop/domains', { hostname: 'shop.example.com' });
      assert.equal(added.status, 201, JSON.stringify(added.body));
      assert.equal(added.body.status, 'pending_dns');
      assert.match(added.body.problem, /shop\.example\.com does not point at this machine: it does not resolve/);
      const created = new Date(added.body.createdAt);
      assert.equal((await viaRouter(local, 'shop.example.com', '/health')).status, 404);

      const deps = { knex: db(), config, log };
      assert.equal((await checkCertificates(deps, later(created, 30_000))).checked, 0, 'not due before a minute');
      dns.set('shop.example.com', ['203.0.113.7']);
      const first = await checkCertificates(deps, later(created, MINUTE + 1000));
      assert.deepEqual([first.checked, first.active], [1, []]);
      const pending = await Domain.query(db()).findOne({ hostname: 'shop.example.com' }).throwIfNotFound();
      assert.equal(
        pending.lastError,
        'shop.example.com does not point at this machine: it resolves to 203.0.113.7. Point shop.example.com at 127.0.0.1 (an A record, or a line in /etc/hosts), then check again.',
      );

      dns.set('shop.example.com', ['127.0.0.1']);
      const done = await checkCertificates(deps, new Date(pending.nextCheckAt!.getTime() + 1000));
      assert.deepEqual(done.active, ['shop.example.com']);
      assert.equal((await viaRouter(local, 'shop.example.com', '/health')).status, 200);
      const notes = await db()('notifications').where({ teamId: w.team.id });
      assert.deepEqual(
        notes.map((n: { kind: string; minRole: string; title: string }) => [n.kind, n.minRole, n.title]),
        [['domain.active', 'admin', 'shop.example.com is live']],
      );
      const activated = await AuditEvent.query(db()).findOne({ action: 'domain.activated' });
      assert.equal(activated?.actorId, null, 'the checker, not a person, saw it go active');
    });
    it('the check-certificates job runs on a real BullMQ worker', async () => {
      await world('starter');
      olive = await signedIn(server.url, 'olive');
      assert.equal((await olive.post('/api/apps/shop/domains', { hostname: 'shop.example.com' })).body.status, 'pending_dns');
      dns.set('shop.example.com', ['::1']);
      await db()('domains').update({ nextCheckAt: new Date(Date.now() - 1000) });
      const connection = { url: config.redisUrl, maxRetriesPerRequest: null };
      const prefix = `test-${randomUUID()}`;
      const [worker] = startWorkers({ connection, prefix, knex: db(), log, config, only: ['checkCertificates'] });
      try {
        const done = new Promise<unknown>((resolve, reject) => {
          worker.on('completed', (_job: Job, result: unknown) => resolve(result));
          worker.on('failed', (_job: Job | undefined, err: Error) => reject(err));
        });
        await enqueue({ connection, prefix }, 'checkCertificates', {});
        const result = (await done) as { active: string[] };
        assert.deepEqual(result.active, ['shop.example.com']);
        assert.equal((await olive.get('/api/apps/shop/domains/shop.example.com')).body.status, 'active');
      } finally {
        await worker.close();
      }
    });
  });

  describe("against Fly's certificates API", () => {
    let fly: FakeFly;
    let server: TestServer;
    let config: Config;
    let olive: Client;

    beforeEach(async () => {
      fly = await startFakeFly();
      config = { ...getConfig(), isLocal: false, appsDomain: 'rhone.app', fly: { token: 'fo1_test', apiUrl: fly.url, org: 'rhone' } };
      server = await startTestServer({ config });
    });
    afterEach(async () => {
      assert.deepEqual(fly.specProblems, [], "every request and answer matched Fly's spec");
      await server.close();
      await fly.close();
    });

    /** Production has no dev login: olive calls with an API token. */
    async function asOlive(w: World): Promise<Client> {
      const { token } = await createToken(db(), { user: w.olive, via: 'session' }, { name: 'test', scope: 'admin' });
      return new Client(server.url).withToken(token);
    }

    async function add(hostname: string) {
      const res = await olive.post('/api/apps/shop/domains', { hostname });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.body;
    }

    it('requests an ACME certificate and shows the DNS records to create, in Unicode and punycode', async () => {
      olive = await asOlive(await world('pro'));
      const d = await add('Bücher.Example');
      assert.deepEqual([d.hostname, d.displayHostname, d.status], ['xn--bcher-kva.example', 'bücher.example', 'pending_dns']);
      assert.equal(d.url, 'https://xn--bcher-kva.example');
      assert.deepEqual(
        d.dnsRecords.map((r: { type: string; name: string; value: string; purpose: string }) => [r.type, r.name, r.value, r.purpose]),
        [
          ['CNAME', 'xn--bcher-kva.example', 'rhone-shop.fly.dev', 'routing'],
          ['A', 'xn--bcher-kva.example', '66.241.124.10', 'routing'],
          ['AAAA', 'xn--bcher-kva.example', '2a09:8280:1::4e:1', 'routing'],
          ['CNAME', '_acme-challenge.xn--bcher-kva.example', 'xn--bcher-kva.example.k3x9.flydns.net', 'acme_challenge'],
          ['TXT', '_fly-ownership.xn--bcher-kva.example', 'app-7xq2', 'ownership'],
        ],
      );
      assert.match(d.dnsRecords[0].note, /zone apex/);
      // The Fly app did not exist (never deployed): it was made, with a shared IPv4 and an IPv6.
      assert.ok(fly.apps.has('rhone-shop'));
      assert.deepEqual(
        fly.ips
          .get('rhone-shop')
          ?.map((i) => i.ip)
          .sort(),
        ['2a09:8280:1::4e:1', '66.241.124.10'],
      );
      assert.equal((await olive.get(`/api/apps/shop/domains/${encodeURIComponent('bücher.example')}`)).body.hostname, 'xn--bcher-kva.example');

      const own = await olive.post('/api/apps/shop/domains', { hostname: 'www.shop.rhone.app' });
      assert.equal(own.status, 400);
      assert.match(own.body.message, /under Rhone's own domain rhone\.app, which serves the app at shop\.rhone\.app already/);

      assert.equal((await olive.delete(`/api/apps/shop/domains/xn--bcher-kva.example`)).status, 204);
      assert.deepEqual([...fly.certs.keys()], [], 'the certificate was deleted at Fly');
    });

    it("a hostname Fly refuses is a 422 with Fly's words, and leaves nothing behind", async () => {
      olive = await asOlive(await world('pro'));
      fly.apps.add('rhone-other');
      fly.certs.set('rhone-other/shop.example.com', { app: 'rhone-other', hostname: 'shop.example.com', step: 0 });
      const res = await olive.post('/api/apps/shop/domains', { hostname: 'shop.example.com' });
      assert.equal(res.status, 422, JSON.stringify(res.body));
      assert.equal(res.body.error, 'domain_rejected');
      assert.match(res.body.message, /Fly refused a certificate for shop\.example\.com: shop\.example\.com is already in use by another app/);
      assert.deepEqual(await domains(), []);
      assert.equal(await AuditEvent.query(db()).where('action', 'like', 'domain.%').resultSize(), 0);
    });

    it('the checker backs off from 1 minute to 1 hour, walks to active, and tells the admins', async () => {
      const w = await world('pro');
      olive = await asOlive(w);
      fly.steps = [
        DEFAULT_STEPS[0],
        DEFAULT_STEPS[0],
        DEFAULT_STEPS[0],
        DEFAULT_STEPS[0],
        DEFAULT_STEPS[0],
        DEFAULT_STEPS[0],
        DEFAULT_STEPS[0],
        DEFAULT_STEPS[0],
        DEFAULT_STEPS[1],
        DEFAULT_STEPS[2],
      ];
      await add('shop.example.com');
      const deps = { knex: db(), config, log };
      const waits: number[] = [];
      const statuses: string[] = [];
      for (let i = 0; i < 9; i++) {
        const before = await Domain.query(db()).findOne({ hostname: 'shop.example.com' }).throwIfNotFound();
        const at = new Date(before.nextCheckAt!.getTime());
        assert.equal((await checkCertificates(deps, new Date(at.getTime() - 1000))).checked, 0, 'nothing before it is due');
        await checkCertificates(deps, at);
        const after = await Domain.query(db()).findOne({ hostname: 'shop.example.com' }).throwIfNotFound();
        statuses.push(after.status);
        if (after.nextCheckAt) waits.push((after.nextCheckAt.getTime() - at.getTime()) / MINUTE);
      }
      assert.deepEqual(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
      assert.deepEqual(statuses, [
        'pending_dns',
        'pending_dns',
        'pending_dns',
        'pending_dns',
        'pending_dns',
        'pending_dns',
        'pending_dns',
        'pending_dns',
        'active',
      ]);
      const d = (await olive.get('/api/apps/shop/domains/shop.example.com')).body;
      assert.deepEqual([d.status, d.problem, d.nextCheckAt, d.certificate.issuer], ['active', null, null, "Let's Encrypt R11"]);
      assert.deepEqual(
        (await db()('notifications').where({ teamId: w.team.id })).map((n: { kind: string; minRole: string }) => [n.kind, n.minRole]),
        [['domain.active', 'admin']],
      );
      assert.equal(await AuditEvent.query(db()).where({ action: 'domain.activated' }).resultSize(), 1);
      // An active domain is not checked again.
      assert.equal((await checkCertificates(deps, later(new Date(), 10 * 3600_000))).checked, 0);
    });

    it("waits for Let's Encrypt's rate limit, and rides out Fly's 429s", async () => {
      olive = await asOlive(await world('pro'));
      const until = new Date(Date.now() + 5 * 3600_000).toISOString();
      fly.steps = [DEFAULT_STEPS[0], { ...DEFAULT_STEPS[1], rateLimitedUntil: until }, DEFAULT_STEPS[2]];
      await add('shop.example.com');
      const due = (await Domain.query(db()).findOne({ hostname: 'shop.example.com' }).throwIfNotFound()).nextCheckAt!;
      fly.tooManyRequests = 1;
      const result = await checkCertificates({ knex: db(), config, log }, due);
      assert.equal(result.checked, 1);
      assert.ok(
        fly.requests.some((r) => r.status === 429),
        'Fly answered 429 once',
      );
      const d = await Domain.query(db()).findOne({ hostname: 'shop.example.com' }).throwIfNotFound();
      assert.equal(d.status, 'pending_dns');
      assert.equal(d.rateLimitedUntil?.toISOString(), new Date(until).toISOString());
      assert.equal(d.nextCheckAt?.toISOString(), new Date(until).toISOString(), 'no check before the rate limit lifts');
      assert.match(d.lastError!, /Let's Encrypt rate-limits new certificates for this domain until/);
      assert.equal((await checkCertificates({ knex: db(), config, log }, new Date(Date.parse(until) - 1000))).checked, 0);
    });

    it('gives up after 72 hours saying what is still wrong; "Check now" starts again', async () => {
      const w = await world('pro');
      olive = await asOlive(w);
      fly.steps = [DEFAULT_STEPS[0]];
      await add('shop.example.com');
      const deps = { knex: db(), config, log };
      // A controlled clock: each check at the moment it is due, until Rhone stops.
      let checks = 0;
      for (;;) {
        const d = await Domain.query(db()).findOne({ hostname: 'shop.example.com' }).throwIfNotFound();
        if (!d.nextCheckAt) break;
        await checkCertificates(deps, d.nextCheckAt);
        checks++;
        assert.ok(checks < 100, 'the checker stops');
      }
      const failed = await Domain.query(db()).findOne({ hostname: 'shop.example.com' }).throwIfNotFound();
      assert.equal(failed.status, 'failed');
      assert.ok(failed.lastCheckedAt!.getTime() - failed.checksStartedAt.getTime() >= 72 * 3600_000);
      assert.ok(failed.lastCheckedAt!.getTime() - failed.checksStartedAt.getTime() < 73 * 3600_000, 'stops within the hour after 72 hours');
      assert.match(
        failed.lastError!,
        /^Rhone stopped checking after 72 hours\. shop\.example\.com does not resolve to this app\. Add a CNAME record for shop\.example\.com pointing to rhone-shop\.fly\.dev\. Fix the DNS records, then press "Check now"/,
      );
      const notes = await db()('notifications').where({ teamId: w.team.id });
      assert.deepEqual(
        notes.map((n: { kind: string }) => n.kind),
        ['domain.failed'],
      );

      fly.steps = DEFAULT_STEPS;
      const again = await olive.post('/api/apps/shop/domains/shop.example.com/check');
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(again.body.status, 'pending_dns', 'checking starts again');
      assert.ok(Date.parse(again.body.nextCheckAt) - Date.now() <= MINUTE + 5000);
    });

    it('is checked every minute by a schedule', () => {
      const schedule = SCHEDULES.find((s) => s.queue === 'checkCertificates');
      assert.deepEqual([schedule?.every, schedule?.pattern], [MINUTE, undefined]);
    });
  });
});
