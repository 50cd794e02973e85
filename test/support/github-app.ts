// A world for the GitHub App tests: the fake GitHub with its App module, an api configured as the
// App (in production mode, signing in with GitHub, or in local mode with dev sign-in), its own
// queues, and webhooks built from GitHub's recorded payloads (test/fixtures/github-webhooks, real
// deliveries kept in the repository so the tests run from any checkout),
// signed with the real signing code.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Webhooks } from '@octokit/webhooks';
import type { Logger } from 'pino';
import { getConfig, type Config } from '../../backend/config.ts';
import type { QueueContext } from '../../jobs/queues.ts';
import { startTestServer, type TestServer } from '../http.ts';
import { FakeGitHub } from './fake-github.ts';
import { FakeGithubApp, type FakeInstallation, type FakeRepo } from './fake-github-app.ts';
import { PUBLIC_URL, productionConfig } from './github-signin.ts';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/github-webhooks');
export const WEBHOOK_SECRET = 'test-webhook-secret-0123456789';

/** One of GitHub's recorded payloads (a file name there), parsed afresh: tests change it. */
export function fixture(file: string): Record<string, any> {
  return JSON.parse(readFileSync(path.join(FIXTURES, file), 'utf8'));
}

/** The App's settings pointing at the fake, in the given mode. */
export function githubAppConfig(fake: FakeGitHub, app: FakeGithubApp, mode: 'production' | 'local', overrides: Partial<Config> = {}): Config {
  const base = { ...getConfig(), ...(mode === 'production' ? productionConfig(fake) : { publicUrl: PUBLIC_URL }), ...overrides };
  return {
    ...base,
    github: {
      ...base.github,
      appId: String(app.appId),
      privateKey: app.privateKey,
      clientId: fake.clientId,
      clientSecret: fake.clientSecret,
      webhookSecret: WEBHOOK_SECRET,
      apiUrl: fake.url,
    },
  };
}

export function testQueues(config: Config): QueueContext {
  return { connection: { url: config.redisUrl, maxRetriesPerRequest: null }, prefix: `t-${randomUUID()}` };
}

export interface GithubAppWorld {
  fake: FakeGitHub;
  app: FakeGithubApp;
  server: TestServer;
  config: Config;
  queues: QueueContext;
}

/** The fake GitHub with its App, and an api pointed at it, for the calling describe block. */
export function useGithubAppWorld({ mode = 'production', log }: { mode?: 'production' | 'local'; log?: Logger } = {}): GithubAppWorld {
  const world = {} as GithubAppWorld;
  before(async () => {
    world.fake = await FakeGitHub.start();
    world.app = new FakeGithubApp(world.fake);
    world.app.setupUrl = `${PUBLIC_URL}/github/setup`;
    world.config = githubAppConfig(world.fake, world.app, mode);
    world.queues = testQueues(world.config);
    world.server = await startTestServer({ config: world.config, queues: world.queues, log });
  });
  beforeEach(() => world.fake.reset());
  after(async () => {
    await world.server?.close();
    await world.fake?.close();
  });
  return world;
}

export interface Delivery {
  status: number;
  body: any;
  deliveryId: string;
}

/** POSTs a webhook as GitHub does: JSON, signed over the exact bytes, with event and delivery headers. */
export async function deliver(
  serverUrl: string,
  event: string,
  payload: unknown,
  { deliveryId = randomUUID(), secret = WEBHOOK_SECRET, signature }: { deliveryId?: string; secret?: string; signature?: string | null } = {},
): Promise<Delivery> {
  const body = JSON.stringify(payload);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'GitHub-Hookshot/test',
    'x-github-event': event,
    'x-github-delivery': deliveryId,
    'x-github-hook-id': '1',
  };
  const signed = signature === undefined ? await new Webhooks({ secret }).sign(body) : signature;
  if (signed !== null) headers['x-hub-signature-256'] = signed;
  const res = await fetch(`${serverUrl}/webhooks/github`, { method: 'POST', headers, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, deliveryId };
}

/** A push of `after` to `ref` of the repository, through the installation: GitHub's recorded push, changed. */
export function pushPayload(
  installation: FakeInstallation,
  repo: FakeRepo,
  { ref = 'refs/heads/main', after, message = 'Update', deleted = false }: { ref?: string; after: string; message?: string; deleted?: boolean },
) {
  const p = fixture('push_1.payload.json');
  const before = p.before as string;
  Object.assign(p, { ref, before, after: deleted ? '0'.repeat(40) : after, created: false, deleted, installation: { id: installation.id, node_id: 'x' } });
  p.repository = { ...p.repository, id: repo.id, name: repo.name, full_name: repo.fullName, private: repo.private, default_branch: repo.defaultBranch };
  const commit = {
    id: after,
    tree_id: 'f'.repeat(40),
    distinct: true,
    message,
    timestamp: new Date().toISOString(),
    author: { name: 'Test', email: 't@example.com' },
    committer: { name: 'Test', email: 't@example.com' },
    added: [],
    removed: [],
    modified: [],
  };
  p.head_commit = deleted ? null : commit;
  p.commits = deleted ? [] : [commit];
  return p;
}

/**
 * GitHub's recorded installation event for this installation, with `action`. `sender` is who acted
 * (installed it, or approved someone's request to); `requester` who asked for it, when it was requested.
 */
export function installationPayload(
  action: string,
  installation: FakeInstallation,
  repos: FakeRepo[] = [],
  { sender, requester }: { sender?: { id: number; login: string }; requester?: { id: number; login: string } } = {},
) {
  const p = fixture('installation_created.payload.json');
  p.action = action;
  if (sender) p.sender = { ...p.sender, id: sender.id, login: sender.login };
  if (requester) p.requester = { ...p.sender, id: requester.id, login: requester.login };
  p.installation = {
    ...p.installation,
    id: installation.id,
    account: { ...p.installation.account, login: installation.account.login, id: installation.account.id, type: installation.account.type },
  };
  p.repositories = repos.map((r) => ({ id: r.id, name: r.name, full_name: r.fullName, private: r.private }));
  return p;
}

/** GitHub's recorded installation_repositories event, with `action` and the repositories it names. */
export function installationRepositoriesPayload(action: 'added' | 'removed', installation: FakeInstallation, repos: FakeRepo[]) {
  const p = fixture('installation_repositories_added.payload.json');
  const list = repos.map((r) => ({ id: r.id, name: r.name, full_name: r.fullName, private: r.private }));
  Object.assign(p, { action, repositories_added: action === 'added' ? list : [], repositories_removed: action === 'removed' ? list : [] });
  p.installation = {
    ...p.installation,
    id: installation.id,
    account: { ...p.installation.account, login: installation.account.login, id: installation.account.id },
  };
  return p;
}
