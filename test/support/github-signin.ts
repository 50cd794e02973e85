// Driving "Sign in with GitHub" against the fake GitHub, as a browser would, and reading the api's log.
import assert from 'node:assert/strict';
import type { Logger } from 'pino';
import { getConfig, type Config } from '../../backend/config.ts';
import { createLogger } from '../../backend/lib/logger.ts';
import { startTestServer, type Client, type Res, type TestServer } from '../http.ts';
import { FakeGitHub } from './fake-github.ts';

/**
 * The api's public URL in these tests. The real port is not known before the server listens, and the
 * flow only needs the callback URL to be the same at authorize and at code exchange: the test plays
 * the browser and calls the callback's path and query on the test server itself.
 */
export const PUBLIC_URL = 'http://rhone.test';

/** A production-mode configuration whose GitHub is the fake. */
export function productionConfig(fake: FakeGitHub): Partial<Config> {
  const base = getConfig();
  return {
    mode: 'production',
    isLocal: false,
    publicUrl: PUBLIC_URL,
    secureCookies: false,
    github: { ...base.github, clientId: fake.clientId, clientSecret: fake.clientSecret, apiUrl: fake.url },
  };
}

/** A logger with the api's real settings (redaction included) writing to memory. */
export function captureLog(level = 'info'): { log: Logger; lines: string[]; text(): string; entries(): Record<string, any>[] } {
  const lines: string[] = [];
  const log = createLogger(level, {
    write: (s: string) => {
      lines.push(s);
    },
  });
  return {
    log,
    lines,
    text: () => lines.join(''),
    entries: () =>
      lines
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
  };
}

/** GET /auth/github: the redirect to GitHub's authorize page, and the state it carries. */
export async function startSignIn(client: Client): Promise<{ res: Res; authorizeUrl: URL; state: string }> {
  const res = await client.get('/auth/github');
  assert.equal(res.status, 302, `GET /auth/github: ${res.status} ${JSON.stringify(res.body)}`);
  const authorizeUrl = new URL(res.headers.get('location')!);
  return { res, authorizeUrl, state: authorizeUrl.searchParams.get('state')! };
}

/** The browser's way back from GitHub: the callback URL's path and query, called on the test server. */
export function callbackPath(back: URL): string {
  assert.equal(back.origin, PUBLIC_URL, `GitHub sent the browser to ${back}`);
  return back.pathname + back.search;
}

/** The whole flow as `login` (signed in at the fake GitHub), ending with the callback's answer. */
export async function githubSignIn(client: Client, fake: FakeGitHub, login: string): Promise<Res> {
  const { authorizeUrl } = await startSignIn(client);
  return client.get(callbackPath(fake.authorize(authorizeUrl.href, login)));
}

export interface GithubWorld {
  fake: FakeGitHub;
  server: TestServer;
}

/** A fake GitHub and a production-mode api pointed at it, for the calling describe block. */
export function useGithubWorld(log: Logger): GithubWorld {
  const world = {} as GithubWorld;
  before(async () => {
    world.fake = await FakeGitHub.start();
    world.server = await startTestServer({ config: productionConfig(world.fake), log });
  });
  after(async () => {
    await world.server?.close();
    await world.fake?.close();
  });
  return world;
}
