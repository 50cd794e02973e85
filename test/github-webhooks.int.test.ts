// POST /webhooks/github, end to end: GitHub's recorded payloads, changed to name this test's
// installation and repositories and signed with the real signing code; the api stores them, a real
// worker processes them against the fake GitHub.
import assert from 'node:assert/strict';
import type { Worker } from 'bullmq';
import { pino } from 'pino';
import { db } from '../backend/db.ts';
import { storeInstallation, fetchInstallation } from '../backend/commands/github-installations.ts';
import { App, Deployment, GithubInstallation, WebhookDelivery, type Team, type User } from '../backend/models/index.ts';
import { startWorkers } from '../jobs/worker.ts';
import { sweepDeliveries } from '../backend/commands/webhooks.ts';
import { makeTeam, makeUser } from './factories.ts';
import { signedIn, type Client } from './http.ts';
import { deliver, fixture, installationPayload, installationRepositoriesPayload, pushPayload, useGithubAppWorld } from './support/github-app.ts';
import type { FakeInstallation, FakeRepo } from './support/fake-github-app.ts';
import { TestRepo } from './support/git-repo.ts';
import { until } from './local-helpers.ts';

const processed = (deliveryId: string) =>
  until(`delivery ${deliveryId} to be processed`, async () => {
    const row = await WebhookDelivery.query(db()).findOne({ provider: 'github', deliveryId });
    return row?.processedAt ? row : undefined;
  });

describe('GitHub webhooks', () => {
  const world = useGithubAppWorld({ mode: 'local' });
  let workers: Worker[];
  let ada: Client;
  let user: User;
  let team: Team;
  let source: TestRepo;
  let web: FakeRepo;
  let other: FakeRepo;
  let installation: FakeInstallation;
  let sha: string;

  before(() => {
    workers = startWorkers({
      connection: world.queues.connection,
      prefix: world.queues.prefix,
      knex: db(),
      log: pino({ level: 'silent' }),
      config: world.config,
      only: ['webhooks', 'commitStatus'],
    });
  });
  after(async () => {
    await Promise.all(workers.map((w) => w.close()));
  });

  beforeEach(async () => {
    world.fake.addUser({ id: 1, login: 'ada' });
    user = await makeUser('ada');
    team = await makeTeam(user, 'acme');
    source = new TestRepo();
    sha = source.write('index.html', '<h1>one</h1>').commit('first');
    web = world.app.addRepo('ada/web', { from: source });
    other = world.app.addRepo('ada/other');
    installation = world.app.addInstallation('ada', [web, other]);
    await storeInstallation(db(), await fetchInstallation(world.config, installation.id), { team, actor: { user, via: 'session' } });
    ada = await signedIn(world.server.url, 'ada');
    // The create-app form sends what the picker showed; Rhone stores GitHub's spelling and the repository id.
    const created = await ada.post('/api/teams/acme/apps', {
      name: 'Web',
      slug: 'web',
      source: { type: 'github', repo: 'ADA/Web', branch: 'main', installationId: installation.id },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(created.body.source, { type: 'github', repo: 'ada/web', branch: 'main', installationId: installation.id, repositoryId: web.id });
    assert.equal(created.body.sourceProblem, null);
  });

  const deployments = () => Deployment.query(db()).orderBy('number');
  const push = (options: Parameters<typeof pushPayload>[2], repo = web) => deliver(world.server.url, 'push', pushPayload(installation, repo, options));

  it('refuses a wrong or missing signature with 401 and stores nothing', async () => {
    const payload = pushPayload(installation, web, { after: sha });
    for (const res of [
      await deliver(world.server.url, 'push', payload, { secret: 'not-the-secret' }),
      await deliver(world.server.url, 'push', payload, { signature: null }),
      await deliver(world.server.url, 'push', payload, { signature: 'sha256=' + '0'.repeat(64) }),
      await deliver(world.server.url, 'push', payload, { signature: 'sha1=abc' }),
    ]) {
      assert.equal(res.status, 401, JSON.stringify(res.body));
      assert.equal(res.body.error, 'invalid_signature');
    }
    assert.equal(await WebhookDelivery.query(db()).resultSize(), 0);
    assert.equal((await deployments()).length, 0);
  });

  it('answers ping with 200, ignores events it does not act on, and refuses a delivery without headers', async () => {
    const ping = await deliver(world.server.url, 'ping', fixture('ping_with-app_id.payload.json'));
    assert.equal(ping.status, 200);
    const pr = await deliver(world.server.url, 'pull_request', fixture('pull_request_opened.payload.json'));
    assert.equal(pr.status, 202);
    assert.equal(pr.body.ignored, true);
    const noDelivery = await deliver(world.server.url, 'push', pushPayload(installation, web, { after: sha }), { deliveryId: '' });
    assert.equal(noDelivery.status, 400);
    assert.equal(noDelivery.body.error, 'invalid_delivery');
    assert.equal(await WebhookDelivery.query(db()).resultSize(), 0);
  });

  it('deploys a push to the tracked branch once per commit; a redelivery is acknowledged and ignored', async () => {
    const first = await push({ after: sha, message: 'Ship the new page' });
    assert.equal(first.status, 202, JSON.stringify(first.body));
    await processed(first.deliveryId);
    const [d] = await deployments();
    assert.deepEqual([d.trigger, d.commitSha, d.ref, d.commitMessage, d.status], ['push', sha, 'main', 'Ship the new page', 'queued']);

    const again = await deliver(world.server.url, 'push', pushPayload(installation, web, { after: sha }), { deliveryId: first.deliveryId });
    assert.equal(again.status, 200);
    assert.equal(again.body.duplicate, true);
    // The same commit pushed again (another delivery): still one deployment of it.
    await processed((await push({ after: sha })).deliveryId);
    assert.equal((await deployments()).length, 1);
    assert.equal(await WebhookDelivery.query(db()).resultSize(), 2);

    // Reported back: pending on the pushed commit, for this app.
    const status = await until('the pending commit status', async () => world.app.statusesOf(sha)[0]);
    assert.deepEqual([status.repo, status.state, status.context], ['ada/web', 'pending', 'rhone/web']);
    assert.equal(status.target_url, `http://rhone.test/apps/web/deployments/${d.id}`);
    const statusToken = world.app.tokens().find((t) => t.body.permissions?.statuses);
    assert.deepEqual(statusToken?.body, { repository_ids: [web.id], permissions: { statuses: 'write' } });
  });

  it('deploys while GitHub refuses commit statuses for a while; the status is posted once GitHub is back', async function () {
    this.timeout(30_000);
    const undo = world.fake.route('POST', '/repos/:owner/:repo/statuses/:sha', () => ({ status: 503, json: { message: 'Service unavailable' } }));
    try {
      await processed((await push({ after: sha })).deliveryId);
      assert.deepEqual(
        (await deployments()).map((d) => [d.commitSha, d.status]),
        [[sha, 'queued']],
      );
      await until('a refused status post', async () => world.fake.calls('POST', `/repos/ada/web/statuses/${sha}`).length > 0);
    } finally {
      undo();
    }
    const status = await until('the pending status, on a retry', async () => world.app.statusesOf(sha)[0], 20_000);
    assert.equal(status.state, 'pending');
    // The job records what it posted once GitHub has answered: after the fake saw the request.
    await until(
      'the deployment to record the posted status',
      async () => (await Deployment.query(db()).findOne({ commitSha: sha }))?.githubStatus === 'pending',
    );
  });

  it('records [skip ci] and [skip deploy] pushes as skipped deployments, with the reason', async () => {
    await processed((await push({ after: sha, message: 'Docs only [skip ci]' })).deliveryId);
    const next = source.write('b.txt', 'b').commit('More docs [SKIP DEPLOY]\n\nbody');
    await processed((await push({ after: next, message: 'More docs [SKIP DEPLOY]\n\nbody' })).deliveryId);
    const rows = await deployments();
    assert.deepEqual(
      rows.map((d) => [d.status, d.commitSha, d.reason]),
      [
        ['skipped', sha, 'Skipped: the commit message contains [skip ci].'],
        ['skipped', next, 'Skipped: the commit message contains [SKIP DEPLOY].'],
      ],
    );
    const res = await ada.get('/api/apps/web/deployments');
    assert.deepEqual(
      res.body.items.map((d: { status: string }) => d.status),
      ['skipped', 'skipped'],
    );
  });

  it('does nothing for other branches, tags, deleted branches, other repositories, or with auto-deploy off', async () => {
    const ids = [
      (await push({ ref: 'refs/heads/feature', after: sha })).deliveryId,
      (await push({ ref: 'refs/tags/v1.0.0', after: sha })).deliveryId,
      (await push({ after: sha, deleted: true })).deliveryId,
      (await push({ after: sha }, other)).deliveryId,
      // GitHub's own recorded push: a deleted tag, of a repository Rhone does not know.
      (await deliver(world.server.url, 'push', fixture('push_payload.json'))).deliveryId,
    ];
    for (const id of ids) assert.equal((await processed(id)).error, null);
    assert.equal((await ada.patch('/api/apps/web', { autoDeploy: false })).status, 200);
    await processed((await push({ after: sha })).deliveryId);
    assert.equal((await deployments()).length, 0);
  });

  it('keeps installations in sync: suspend, unsuspend, repositories removed and added, uninstall; the app says so and stops deploying', async () => {
    const appState = async () => (await ada.get('/api/apps/web')).body.sourceProblem as { code: string; message: string } | null;

    world.app.installations.get(installation.id)!.suspendedAt = new Date().toISOString();
    await processed((await deliver(world.server.url, 'installation', installationPayload('suspend', installation))).deliveryId);
    assert.equal((await GithubInstallation.query(db()).findById(installation.id))?.suspendedAt instanceof Date, true);
    assert.equal((await appState())?.code, 'installation_suspended');
    assert.match((await appState())!.message, /suspended on GitHub/);
    await processed((await push({ after: sha })).deliveryId);
    assert.equal((await deployments()).length, 0, 'a suspended installation does not deploy');
    const manual = await ada.post('/api/apps/web/deploy', {});
    assert.equal(manual.status, 409);
    assert.equal(manual.body.error, 'source_unavailable');

    world.app.installations.get(installation.id)!.suspendedAt = null;
    await processed((await deliver(world.server.url, 'installation', installationPayload('unsuspend', installation))).deliveryId);
    assert.equal(await appState(), null);

    world.app.installations.get(installation.id)!.repoIds.delete(web.id);
    await processed((await deliver(world.server.url, 'installation_repositories', installationRepositoriesPayload('removed', installation, [web]))).deliveryId);
    assert.equal((await appState())?.code, 'repository_removed');
    assert.deepEqual(
      (await ada.get('/api/teams/acme/github/repos')).body.items.map((r: { fullName: string }) => r.fullName),
      ['ada/other'],
    );
    await processed((await push({ after: sha })).deliveryId);
    assert.equal((await deployments()).length, 0, 'a removed repository does not deploy');

    world.app.installations.get(installation.id)!.repoIds.add(web.id);
    await processed((await deliver(world.server.url, 'installation_repositories', installationRepositoriesPayload('added', installation, [web]))).deliveryId);
    assert.equal(await appState(), null);
    const next = source.write('c.txt', 'c').commit('back');
    await processed((await push({ after: next })).deliveryId);
    assert.deepEqual(
      (await deployments()).map((d) => d.commitSha),
      [next],
    );

    world.app.installations.delete(installation.id);
    await processed((await deliver(world.server.url, 'installation', installationPayload('deleted', installation))).deliveryId);
    assert.ok((await GithubInstallation.query(db()).findById(installation.id))?.deletedAt);
    assert.equal((await appState())?.code, 'installation_deleted');
    assert.deepEqual((await ada.get('/api/teams/acme/github/repos')).body.items, []);
    assert.deepEqual((await ada.get('/api/teams/acme/github/installations')).body.items, []);
    const audit = (await ada.get('/api/teams/acme/audit')).body.items.map((e: { action: string }) => e.action);
    assert.ok(audit.includes('app.source_lost') && audit.includes('app.source_restored'), audit.join(', '));
  });

  it('follows a renamed repository: the app keeps deploying it under its new name', async () => {
    Object.assign(web, { name: 'website', fullName: 'ada/website' });
    await processed((await deliver(world.server.url, 'installation_repositories', installationRepositoriesPayload('added', installation, [other]))).deliveryId);
    const app = await ada.get('/api/apps/web');
    assert.deepEqual([app.body.source.repo, app.body.source.repositoryId, app.body.sourceProblem], ['ada/website', web.id, null]);
    await processed((await push({ after: sha })).deliveryId);
    assert.deepEqual(
      (await deployments()).map((d) => d.commitSha),
      [sha],
    );
  });

  it('an installation created on GitHub is stored, but belongs to no team until someone connects it', async () => {
    const theirs = world.app.addInstallation('ada', [other]);
    await processed((await deliver(world.server.url, 'installation', installationPayload('created', theirs, [other]))).deliveryId);
    const row = await GithubInstallation.query(db()).findById(theirs.id).throwIfNotFound();
    assert.deepEqual([row.accountLogin, row.teamId], ['ada', null]);
    const create = await ada.post('/api/teams/acme/apps', {
      name: 'X',
      slug: 'x-app',
      source: { type: 'github', repo: 'ada/other', branch: 'main', installationId: theirs.id },
    });
    assert.equal(create.status, 400);
    assert.match(create.body.message, /is not a GitHub App installation of team "acme"/);
    const wrongRepo = await ada.post('/api/teams/acme/apps', {
      name: 'X',
      slug: 'x-app',
      source: { type: 'github', repo: 'ada/nope', branch: 'main', installationId: installation.id },
    });
    assert.equal(wrongRepo.status, 400);
    assert.match(wrongRepo.body.message, /body.source.repo: is not one of the repositories/);
    assert.equal(await App.query(db()).resultSize(), 1);
  });

  it('processes a delivery that was stored while the queue was unreachable, through the sweeper', async () => {
    const payload = pushPayload(installation, web, { after: sha });
    await db()('webhookDeliveries').insert({
      provider: 'github',
      deliveryId: 'lost-1',
      event: 'push',
      payload: JSON.stringify(payload),
      receivedAt: new Date(Date.now() - 120_000),
    });
    assert.equal(await sweepDeliveries(db(), world.queues, pino({ level: 'silent' })), 1);
    await processed('lost-1');
    assert.deepEqual(
      (await deployments()).map((d) => d.commitSha),
      [sha],
    );
    assert.equal(await sweepDeliveries(db(), world.queues, pino({ level: 'silent' })), 0, 'a processed delivery is not swept again');
  });

  it('records a payload it cannot use as processed with an error, without retrying it forever', async () => {
    const broken = { ...pushPayload(installation, web, { after: sha }), ref: undefined };
    const res = await deliver(world.server.url, 'push', broken);
    assert.equal(res.status, 202);
    const row = await processed(res.deliveryId);
    assert.match(row.error ?? '', /ref/);
    assert.equal((await deployments()).length, 0);
  });
});
