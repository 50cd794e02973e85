// Installing the Rhone GitHub App for a team, and the repository picker: the real api in production
// mode, the real @octokit/app and OAuth clients, and the fake GitHub playing github.com and its API.
import assert from 'node:assert/strict';
import { db } from '../backend/db.ts';
import { AuditEvent, GithubInstallation, GithubInstallationRepository, Team, User } from '../backend/models/index.ts';
import { addMember, makeTeam } from './factories.ts';
import { Client, type Res } from './http.ts';
import { captureLog, callbackPath, githubSignIn } from './support/github-signin.ts';
import { installationPayload, useGithubAppWorld } from './support/github-app.ts';
import type { FakeInstallation, FakeRepo } from './support/fake-github-app.ts';
import { handleInstallationEvent } from '../backend/commands/github-webhooks.ts';
import { TestRepo } from './support/git-repo.ts';

function assertPage(res: Res, status: number, words: RegExp): void {
  assert.equal(res.status, status, String(res.body));
  assert.match(res.headers.get('content-type') ?? '', /text\/html/);
  assert.match(String(res.body), words);
}

describe('GitHub App installation and repository picker', () => {
  const capture = captureLog('info');
  const world = useGithubAppWorld({ log: capture.log });
  let ada: Client;
  let web: FakeRepo;
  let api: FakeRepo;

  beforeEach(async () => {
    capture.lines.length = 0;
    world.fake.addUser({ id: 583231, login: 'ada', name: 'Ada', emails: [{ email: 'ada@example.com', primary: true, verified: true }] });
    world.fake.addUser({ id: 583232, login: 'bob', name: 'Bob' });
    world.fake.addUser({ id: 583233, login: 'mallory', name: 'Mallory' });
    ada = new Client(world.server.url);
    assert.equal((await githubSignIn(ada, world.fake, 'ada')).status, 302);
    const user = await User.query(db()).findOne({ login: 'ada' }).throwIfNotFound();
    await makeTeam(user, 'acme');
    const source = new TestRepo();
    source.write('index.html', '<h1>hi</h1>').commit('first');
    web = world.app.addRepo('ada/web', { from: source });
    source.git('checkout', '-q', '-b', 'staging');
    source.write('staging.txt', 's').commit('staging work');
    world.app.push(web, source, 'staging');
    api = world.app.addRepo('ada/api');
  });

  afterEach(() => {
    // No token, code, key or secret of GitHub's ever reaches the log.
    const log = capture.text();
    const codes = world.fake.calls('POST', '/login/oauth/access_token').map((r) => r.body.code as string);
    const keyBody = world.app.privateKey.split('\n')[1];
    const secrets = [world.fake.clientSecret, keyBody, ...codes, ...world.fake.tokens.keys(), ...world.app.minted.keys()];
    for (const s of secrets) assert.ok(!log.includes(s), `the log contains a secret: ${s.slice(0, 8)}…`);
  });

  /** The whole install, as a browser: Rhone → GitHub's install page → Setup URL → authorize → Setup URL. */
  async function install(
    client: Client,
    login: string,
    { repos = [web, api], forgeInstallationId, authorizeAs }: { repos?: FakeRepo[]; forgeInstallationId?: number; authorizeAs?: string } = {},
  ) {
    const start = await client.get('/github/install?team=acme');
    assert.equal(start.status, 302, String(start.body));
    const { back, installation } = world.app.install(start.headers.get('location')!, login, { repos });
    if (forgeInstallationId) back.searchParams.set('installation_id', String(forgeInstallationId));
    const setup = await client.get(callbackPath(back));
    assert.equal(setup.status, 302, String(setup.body));
    const authorize = setup.headers.get('location')!;
    const done = await client.get(callbackPath(world.fake.authorize(authorize, authorizeAs ?? login)));
    return { start, setup, authorize: new URL(authorize), done, installation };
  }

  it("installs: GitHub's install page, the user's own token checks the installation, then it is the team's with its repositories", async () => {
    const before = await ada.get('/api/teams/acme/github/installations');
    assert.equal(before.status, 200);
    assert.deepEqual(before.body, { configured: true, installUrl: '/github/install?team=acme', items: [] });

    world.app.pageSize = 1; // two repositories: the listing must follow GitHub's pages
    const { start, authorize, done, installation } = await install(ada, 'ada');
    assert.equal(new URL(start.headers.get('location')!).pathname, '/apps/rhone-test/installations/new');
    assert.equal(authorize.pathname, '/login/oauth/authorize');
    assert.equal(authorize.searchParams.get('redirect_uri'), 'http://rhone.test/github/setup');
    assert.equal(done.status, 302, String(done.body));
    assert.equal(done.headers.get('location'), '/teams/acme?github=connected');

    // The check used the user's own token, on the installations that user can see.
    const [check] = world.fake.calls('GET', '/user/installations');
    assert.match(check.headers.authorization ?? '', /^token ghu_/);

    const row = await GithubInstallation.query(db()).findById(installation.id).throwIfNotFound();
    assert.equal(row.accountLogin, 'ada');
    assert.equal(row.deletedAt, null);
    const repos = await GithubInstallationRepository.query(db()).where({ installationId: installation.id }).orderBy('fullName');
    assert.deepEqual(
      repos.map((r) => [r.fullName, r.repositoryId]),
      [
        ['ada/api', api.id],
        ['ada/web', web.id],
      ],
    );
    assert.ok(await AuditEvent.query(db()).findOne({ action: 'github.installation_linked', subjectId: String(installation.id) }));

    const listed = await ada.get('/api/teams/acme/github/installations');
    assert.deepEqual(
      listed.body.items.map((i: { id: number; account: string; repositoryCount: number; suspended: boolean }) => [
        i.id,
        i.account,
        i.repositoryCount,
        i.suspended,
      ]),
      [[installation.id, 'ada', 2, false]],
    );

    // The picker: repositories by name, narrowed by q, in pages.
    const all = await ada.get('/api/teams/acme/github/repos');
    assert.equal(all.status, 200);
    assert.deepEqual(
      all.body.items.map((r: { fullName: string; installationId: number; private: boolean }) => [r.fullName, r.installationId, r.private]),
      [
        ['ada/api', installation.id, true],
        ['ada/web', installation.id, true],
      ],
    );
    assert.deepEqual(
      (await ada.get('/api/teams/acme/github/repos?q=we')).body.items.map((r: { fullName: string }) => r.fullName),
      ['ada/web'],
    );
    const first = await ada.get('/api/teams/acme/github/repos?limit=1');
    const second = await ada.get(`/api/teams/acme/github/repos?limit=1&cursor=${first.body.next}`);
    assert.deepEqual(
      [...first.body.items, ...second.body.items].map((r: { name: string }) => r.name),
      ['api', 'web'],
    );
    assert.equal(second.body.next, null);

    // Branches, from GitHub, with a token for that one repository and only metadata: read.
    const branches = await ada.get('/api/teams/acme/github/repos/ada/web/branches');
    assert.equal(branches.status, 200, JSON.stringify(branches.body));
    assert.deepEqual(
      branches.body.items.map((b: { name: string; default: boolean }) => [b.name, b.default]),
      [
        ['main', true],
        ['staging', false],
      ],
    );
    assert.match(branches.body.items[0].commitSha, /^[0-9a-f]{40}$/);
    const token = world.app.tokens().at(-1)!;
    assert.deepEqual(token.body, { repository_ids: [web.id], permissions: { metadata: 'read' } });
  });

  it("refuses an installation id the user's GitHub account cannot access (a forged setup URL), and connects nothing", async () => {
    const mallorys = world.app.addInstallation('mallory', [api], { users: ['mallory'] });
    const { done } = await install(ada, 'ada', { forgeInstallationId: mallorys.id });
    assertPage(done, 403, /cannot access installation/);
    assert.equal(await GithubInstallation.query(db()).resultSize(), 0);
    assert.equal((await ada.get('/api/teams/acme/github/repos')).body.items.length, 0);
  });

  it("refuses a GitHub account that is not the signed-in user's", async () => {
    const { done } = await install(ada, 'ada', { authorizeAs: 'bob' });
    assertPage(done, 403, /GitHub says you are bob/);
    assert.equal(await GithubInstallation.query(db()).resultSize(), 0);
  });

  it("refuses a setup callback that did not start here, one used twice, and GitHub's denial", async () => {
    const start = await ada.get('/github/install?team=acme');
    const { back } = world.app.install(start.headers.get('location')!, 'ada', { repos: [web] });
    const other = new Client(world.server.url);
    assert.equal((await githubSignIn(other, world.fake, 'ada')).status, 302);
    assertPage(await other.get(callbackPath(back)), 400, /not valid/);

    assert.equal((await ada.get(callbackPath(back))).status, 302);
    // The first visit used the state up; a replay also ends the flow it interrupted.
    assertPage(await ada.get(callbackPath(back)), 400, /not valid/);

    const again = await ada.get('/github/install?team=acme');
    const setup = await ada.get(callbackPath(world.app.install(again.headers.get('location')!, 'ada', { repos: [web] }).back));
    const denied = world.fake.authorize(setup.headers.get('location')!, 'ada', { deny: true });
    assertPage(await ada.get(callbackPath(denied)), 403, /did not confirm/);
    assert.equal(await GithubInstallation.query(db()).resultSize(), 0);
  });

  it('lets only admins and owners install; says so to a member, and asks the signed-out to sign in', async () => {
    world.fake.addUser({ id: 583234, login: 'mia', name: 'Mia' });
    const mia = new Client(world.server.url);
    assert.equal((await githubSignIn(mia, world.fake, 'mia')).status, 302);
    const team = await Team.query(db()).findOne({ slug: 'acme' }).throwIfNotFound();
    await addMember(team, await User.query(db()).findOne({ login: 'mia' }).throwIfNotFound(), 'member');
    assertPage(await mia.get('/github/install?team=acme'), 403, /may not connect GitHub accounts/);
    assert.equal((await mia.get('/api/teams/acme/github/installations')).body.installUrl, null);
    assertPage(await new Client(world.server.url).get('/github/install?team=acme'), 401, /Sign in/);
    assertPage(await ada.get('/github/setup?setup_action=request'), 200, /asked to approve/);
  });

  it('does not move an installation that another team already has', async () => {
    const first = await install(ada, 'ada', { repos: [web] });
    assert.equal(first.done.status, 302);
    const user = await User.query(db()).findOne({ login: 'ada' }).throwIfNotFound();
    await makeTeam(user, 'beta');
    const start = await ada.get('/github/install?team=beta');
    const back = new URL(world.app.setupUrl);
    back.searchParams.set('installation_id', String(first.installation.id));
    back.searchParams.set('setup_action', 'update');
    back.searchParams.set('state', new URL(start.headers.get('location')!).searchParams.get('state')!);
    const setup = await ada.get(callbackPath(back));
    const done = await ada.get(callbackPath(world.fake.authorize(setup.headers.get('location')!, 'ada')));
    assertPage(done, 409, /already connected to another Rhone team/);
    const row = await GithubInstallation.query(db()).findById(first.installation.id).throwIfNotFound();
    assert.equal(row.teamId, (await Team.query(db()).findOne({ slug: 'acme' }))?.id);
  });

  /**
   * Connecting an installation that already exists on GitHub, as a browser: Rhone's install link for
   * `team`, then GitHub's Setup URL for that installation (GitHub sends setup_action=update when the
   * App is already installed there), then the authorize page as `login`.
   */
  async function connectExisting(client: Client, login: string, team: string, installationId: number): Promise<Res> {
    const start = await client.get(`/github/install?team=${team}`);
    assert.equal(start.status, 302, String(start.body));
    const back = new URL(world.app.setupUrl);
    back.searchParams.set('installation_id', String(installationId));
    back.searchParams.set('setup_action', 'update');
    back.searchParams.set('state', new URL(start.headers.get('location')!).searchParams.get('state')!);
    const setup = await client.get(callbackPath(back));
    assert.equal(setup.status, 302, String(setup.body));
    return client.get(callbackPath(world.fake.authorize(setup.headers.get('location')!, login)));
  }

  /** The installation.created delivery, as the webhooks job applies it: `sender` is who installed it. */
  async function installedBy(installation: FakeInstallation, sender: string, requester?: string): Promise<void> {
    const who = (login: string) => ({ id: world.fake.user(login).id, login });
    const payload = installationPayload('created', installation, [], { sender: who(sender), requester: requester ? who(requester) : undefined });
    await handleInstallationEvent({ knex: db(), config: world.config, queues: world.queues }, payload);
  }

  async function nothingConnected(installationId: number): Promise<void> {
    const row = await GithubInstallation.query(db()).findById(installationId);
    assert.equal(row?.teamId ?? null, null, 'the installation was connected to a team');
    assert.equal(await AuditEvent.query(db()).where({ action: 'github.installation_linked' }).resultSize(), 0);
    assert.equal((await ada.get('/api/teams/acme/github/repos')).body.items.length, 0);
  }

  describe('whose installation it is', () => {
    let bob: Client;
    let org: FakeRepo;

    beforeEach(async () => {
      bob = new Client(world.server.url);
      assert.equal((await githubSignIn(bob, world.fake, 'bob')).status, 302);
      await makeTeam(await User.query(db()).findOne({ login: 'bob' }).throwIfNotFound(), 'bobs');
      org = world.app.addRepo('acme-org/site');
      world.app.addMembership('acme-org', 'bob', 'admin');
      world.app.addMembership('acme-org', 'ada', 'member');
    });

    it('refuses an organization member who neither installed it nor is an owner there, and connects nothing', async () => {
      // Installed by bob (an owner); ada, a member, sees it in /user/installations like every member.
      const theirs = world.app.addInstallation('acme-org', [org], { type: 'Organization', users: ['ada', 'bob'] });
      await installedBy(theirs, 'bob');
      const done = await connectExisting(ada, 'ada', 'acme', theirs.id);
      assertPage(done, 403, /Only an owner of the GitHub organization acme-org, or whoever installed the App there/);
      assert.match(String(done.body), /you are a member there/);
      await nothingConnected(theirs.id);
      // The row the webhook wrote is left as it was.
      assert.equal((await GithubInstallation.query(db()).findById(theirs.id))?.accountLogin, 'acme-org');

      // Abandoned, or its webhook never came: still not ada's to take.
      const abandoned = world.app.addInstallation('acme-org', [org], { type: 'Organization', users: ['ada', 'bob'] });
      assertPage(await connectExisting(ada, 'ada', 'acme', abandoned.id), 403, /Only an owner of the GitHub organization acme-org/);
      await nothingConnected(abandoned.id);
      assert.equal(await GithubInstallation.query(db()).findById(abandoned.id), undefined);
    });

    it("refuses another user's personal installation, even one the user can see", async () => {
      const mallorys = world.app.addInstallation('mallory', [api], { users: ['mallory', 'ada'] });
      assertPage(await connectExisting(ada, 'ada', 'acme', mallorys.id), 403, /on the GitHub account mallory, not yours \(ada\)/);
      await nothingConnected(mallorys.id);
    });

    it("connects it for whoever installed it (installation.created's sender), and for an owner of the organization", async () => {
      const adas = world.app.addInstallation('acme-org', [org], { type: 'Organization', users: ['ada', 'bob'] });
      await installedBy(adas, 'ada'); // e.g. ada administers the repository, and the organization lets repository admins install
      const done = await connectExisting(ada, 'ada', 'acme', adas.id);
      assert.equal(done.status, 302, String(done.body));
      assert.equal((await GithubInstallation.query(db()).findById(adas.id))?.teamId, (await Team.query(db()).findOne({ slug: 'acme' }))?.id);

      // No webhook yet: bob is an active owner of acme-org.
      const bobs = world.app.addInstallation('acme-org', [org], { type: 'Organization', users: ['ada', 'bob'] });
      const byOwner = await connectExisting(bob, 'bob', 'bobs', bobs.id);
      assert.equal(byOwner.status, 302, String(byOwner.body));
      assert.equal((await GithubInstallation.query(db()).findById(bobs.id))?.teamId, (await Team.query(db()).findOne({ slug: 'bobs' }))?.id);
      const [check] = world.fake.calls('GET', '/user/memberships/orgs/acme-org').slice(-1);
      assert.match(check.headers.authorization ?? '', /^token ghu_/);
    });

    it('refuses a pending owner, and says to ask an owner when GitHub does not let Rhone check', async () => {
      world.app.addMembership('acme-org', 'bob', 'admin', 'pending');
      const first = world.app.addInstallation('acme-org', [org], { type: 'Organization', users: ['bob'] });
      assertPage(await connectExisting(bob, 'bob', 'bobs', first.id), 403, /you are a pending admin there/);
      world.app.addMembership('acme-org', 'bob', 'admin');
      delete first.permissions.members;
      const refused = await connectExisting(bob, 'bob', 'bobs', first.id);
      assertPage(refused, 403, /GitHub did not let Rhone check that you are an owner of acme-org/);
      assert.match(String(refused.body), /Ask an owner of acme-org/);
      assert.equal((await GithubInstallation.query(db()).findById(first.id))?.teamId ?? null, null);
    });

    it('never connects on setup_action=request, nor later for whoever requested it', async () => {
      const start = await ada.get('/github/install?team=acme');
      const requested = world.app.request(start.headers.get('location')!);
      requested.searchParams.set('installation_id', '123456'); // forged: GitHub sends none with a request
      assertPage(await ada.get(callbackPath(requested)), 200, /asked to approve/);
      // The flow it ended cannot be carried on with the same state.
      const resumed = new URL(requested);
      resumed.searchParams.set('setup_action', 'install');
      assertPage(await ada.get(callbackPath(resumed)), 400, /not valid/);

      // bob approves: GitHub creates the installation, sender bob, requester ada.
      const approved = world.app.addInstallation('acme-org', [org], { type: 'Organization', users: ['ada', 'bob'] });
      await installedBy(approved, 'bob', 'ada');
      assertPage(await connectExisting(ada, 'ada', 'acme', approved.id), 403, /Only an owner of the GitHub organization acme-org/);
      await nothingConnected(approved.id);
    });
  });

  it("answers the picker's bad input and GitHub's failures with clear errors", async () => {
    await install(ada, 'ada', { repos: [web] });
    const unknown = await ada.get('/api/teams/acme/github/repos/ada/api/branches');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error, 'not_found');
    const bad = await ada.get('/api/teams/acme/github/repos/-ada/web/branches');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error, 'validation_error');
    const badQuery = await ada.get(`/api/teams/acme/github/repos?q=${'x'.repeat(101)}`);
    assert.equal(badQuery.status, 400);

    const undo = world.fake.route('GET', '/repos/:owner/:repo/branches', () => ({ status: 503, json: { message: 'Service unavailable' } }));
    try {
      const down = await ada.get('/api/teams/acme/github/repos/ada/web/branches');
      assert.equal(down.status, 502);
      assert.equal(down.body.error, 'github_unavailable');
      assert.match(down.body.message, /try again/);
    } finally {
      undo();
    }
    // A repository GitHub no longer lets Rhone reach.
    const installation = [...world.app.installations.values()][0];
    installation.repoIds.delete(web.id);
    const gone = await ada.get('/api/teams/acme/github/repos/ada/web/branches');
    assert.equal(gone.status, 404);
    assert.match(gone.body.message, /no longer gives Rhone access/);
  });
});
