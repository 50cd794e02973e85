// From a push on GitHub to a live app, and back to GitHub: the push webhook, a clone through git's
// smart HTTP with an installation token minted for that one repository (the fake GitHub serves a
// local bare repository, and checks the token on every git request), the pipeline on the local
// runtime, and commit statuses on the pushed commit: pending, then success with the app's URL, or
// failure with the reason.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'bullmq';
import { pino } from 'pino';
import type { Config } from '../backend/config.ts';
import { db } from '../backend/db.ts';
import { fetchInstallation, storeInstallation } from '../backend/commands/github-installations.ts';
import { Deployment } from '../backend/models/index.ts';
import { startLocalRuntime, type LocalRuntime } from '../local/main.ts';
import { startWorkers } from '../jobs/worker.ts';
import { makeTeam, makeUser } from './factories.ts';
import { signedIn, startTestServer, type Client, type TestServer } from './http.ts';
import { get } from './support/load.ts';
import { FakeGitHub } from './support/fake-github.ts';
import { FakeGithubApp, type FakeInstallation, type FakeRepo } from './support/fake-github-app.ts';
import { deliver, githubAppConfig, pushPayload, testQueues } from './support/github-app.ts';
import { TestRepo } from './support/git-repo.ts';
import { until } from './local-helpers.ts';

const HELLO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../examples/hello-node');
const TERMINAL = ['live', 'failed', 'canceled', 'superseded', 'replaced', 'skipped'];

/** Every file under `dir`, for looking for a secret on disk. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => path.join(dir, f))
    .filter((f) => statSync(f, { throwIfNoEntry: false })?.isFile());
}

describe('deploying from GitHub (push → clone with an installation token → live → commit status)', function () {
  this.timeout(120_000);
  let fake: FakeGitHub;
  let gh: FakeGithubApp;
  let local: LocalRuntime;
  let config: Config;
  let server: TestServer;
  let workers: Worker[];
  let ada: Client;
  let source: TestRepo;
  let web: FakeRepo;
  let installation: FakeInstallation;

  before(async () => {
    fake = await FakeGitHub.start();
    gh = new FakeGithubApp(fake);
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-github-deploy-'));
    local = await startLocalRuntime({ dataDir, machinesPort: 0, routerPort: 0 });
    config = githubAppConfig(fake, gh, 'local', {
      dataDir,
      machinesPort: Number(new URL(local.machinesUrl).port),
      routerPort: Number(new URL(local.routerUrl).port),
    });
    const queues = testQueues(config);
    server = await startTestServer({ config, queues });
    workers = startWorkers({
      connection: queues.connection,
      prefix: queues.prefix,
      knex: db(),
      log: pino({ level: 'silent' }),
      config,
      only: ['clone', 'analyze', 'build', 'deploy', 'webhooks', 'commitStatus'],
    });
  });
  after(async () => {
    await Promise.all(workers.map((w) => w.close()));
    await server.close();
    await local.close();
    await fake.close();
  });

  beforeEach(async () => {
    fake.reset();
    fake.addUser({ id: 1, login: 'ada' });
    const user = await makeUser('ada');
    const team = await makeTeam(user, 'acme');
    source = new TestRepo(HELLO);
    source.commit('first version');
    web = gh.addRepo('ada/web', { from: source });
    installation = gh.addInstallation('ada', [web]);
    await storeInstallation(db(), await fetchInstallation(config, installation.id), { team, actor: { user, via: 'session' } });
    ada = await signedIn(server.url, 'ada');
    const created = await ada.post('/api/teams/acme/apps', {
      name: 'Web',
      slug: 'web',
      source: { type: 'github', repo: 'ada/web', branch: 'main', installationId: installation.id },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  });

  const settled = (sha: string) =>
    until(
      `the deployment of ${sha.slice(0, 7)} to end`,
      async () => {
        const d = await Deployment.query(db()).findOne({ commitSha: sha });
        return d && TERMINAL.includes(d.status) ? d : undefined;
      },
      90_000,
    );

  /** The commit's statuses, once the last one is `last`. */
  const statesOf = async (sha: string, last: string) => {
    await until(`a ${last} commit status on ${sha.slice(0, 7)}`, () => gh.statusesOf(sha).at(-1)?.state === last, 20_000);
    return gh.statusesOf(sha).map((s) => s.state);
  };

  it("deploys the pushed commit with a one-repository, contents:read token that is stored nowhere, and reports success with the app's URL", async () => {
    const sha = source.git('rev-parse', 'HEAD');
    const res = await deliver(server.url, 'push', pushPayload(installation, web, { after: sha, message: 'first version' }));
    assert.equal(res.status, 202);
    const d = await settled(sha);
    assert.equal(d.status, 'live', d.reason ?? '');
    assert.equal((await get(local.routerUrl, 'web.localhost', '/')).status, 200);

    assert.deepEqual(await statesOf(sha, 'success'), ['pending', 'success']);
    const success = gh.statusesOf(sha).at(-1)!;
    assert.equal(success.target_url, `http://web.localhost:${config.routerPort}`);
    assert.equal(success.context, 'rhone/web');
    assert.match(success.description ?? '', /Live/);

    // The clone's token: minted for this repository alone, contents: read, and the one git presented.
    const cloneTokens = gh.tokens().filter((t) => t.body.permissions?.contents);
    assert.equal(cloneTokens.length, 1);
    assert.deepEqual(cloneTokens[0].body, { repository_ids: [web.id], permissions: { contents: 'read' } });
    const token = cloneTokens[0].token;
    assert.ok(gh.gitRequests.length >= 2, 'git spoke smart HTTP to the fake');
    for (const r of gh.gitRequests) {
      assert.ok(!r.path.includes(token), 'the token is not in a URL');
      assert.ok(r.token === null || r.token === token, 'git presented only the clone token');
    }
    assert.ok(gh.gitRequests.some((r) => r.token === token));

    // Nowhere in Postgres, nor on disk (the source artifact holds the checkout's .git).
    const { rows } = (await db().raw(`select table_name from information_schema.tables where table_schema = 'public'`)) as { rows: { table_name: string }[] };
    for (const { table_name: table } of rows) {
      const dump = JSON.stringify(await db().raw(`select * from "${table}"`));
      assert.ok(!dump.includes(token), `the token is in table ${table}`);
    }
    const files = filesUnder(config.dataDir);
    assert.ok(
      files.some((f) => f.endsWith(`${path.sep}.git${path.sep}config`)),
      'the checkout with its .git/config was looked at',
    );
    for (const f of files) assert.ok(!readFileSync(f).includes(token), `the token is in ${f}`);
  });

  it('reports a failed build as a failure with the reason; a manual deploy resolves the branch through GitHub too', async () => {
    const pkg = JSON.parse(source.git('show', 'HEAD:package.json')) as { scripts: Record<string, string> };
    pkg.scripts.build = 'echo compiling && exit 7';
    const sha = source.write('package.json', JSON.stringify(pkg)).commit('broken build');
    gh.push(web, source);
    const deploy = await ada.post('/api/apps/web/deploy', {});
    assert.equal(deploy.status, 202, JSON.stringify(deploy.body));
    assert.equal(deploy.body.commitSha, sha, 'the branch was resolved on the GitHub repository');
    const d = await settled(sha);
    assert.equal(d.status, 'failed');
    assert.deepEqual(await statesOf(sha, 'failure'), ['pending', 'failure']);
    assert.match(gh.statusesOf(sha).at(-1)!.description ?? '', /exited with code 7/);
    assert.equal(gh.statusesOf(sha).at(-1)!.target_url, `http://rhone.test/apps/web/deployments/${d.id}`);
  });

  it('fails the deployment with words a user can act on when GitHub no longer grants the repository', async () => {
    const sha = source.git('rev-parse', 'HEAD');
    // Taken away on GitHub, and the push arrives before the installation event saying so.
    installation.repoIds.delete(web.id);
    await deliver(server.url, 'push', pushPayload(installation, web, { after: sha }));
    const d = await settled(sha);
    assert.equal(d.status, 'failed');
    assert.match(d.reason ?? '', /GitHub refused Rhone access to ada\/web/);
  });
});
