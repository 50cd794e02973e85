// The Rhone GitHub App as this process reaches it: one @octokit/app per configuration (it signs the
// App's JWTs), installation tokens narrowed to one repository and the permissions a call needs, and
// the few helpers every GitHub call shares. Each token is minted for the call at hand, straight from
// GitHub (not from @octokit/auth-app's in-memory cache), and never stored, logged or put in a job
// payload; it expires within the hour on its own.
import { App } from '@octokit/app';
import { Octokit } from '@octokit/core';
import type { Config } from '../../config.ts';
import { AppError } from '../../lib/errors.ts';
import { logger } from '../../lib/logger.ts';

/** GitHub answers within this, or the call is treated as GitHub being unreachable. */
const REQUEST_TIMEOUT_MS = 20_000;
/** Enough for any team's picker; more pages than this are not read. */
const MAX_ITEMS = 3000;

export type Permissions = Record<string, 'read' | 'write'>;
export type GithubClient = InstanceType<typeof Octokit>;

export interface RepoRef {
  fullName: string;
  /** Preferred when known: a repository keeps its id when renamed. */
  id?: number;
}

export class GithubNotConfiguredError extends AppError {
  constructor() {
    super(
      503,
      'github_not_configured',
      'The Rhone GitHub App is not set up on this server: set GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY (and GITHUB_WEBHOOK_SECRET for pushes), or deploy from a git URL.',
    );
  }
}

export function githubAppConfigured(config: Config): boolean {
  return Boolean(config.github.appId && config.github.privateKey);
}

/** github.com for api.github.com; GitHub Enterprise Server serves its API under /api/v3. */
export function githubWebUrl(config: Config): string {
  const api = config.github.apiUrl.replace(/\/+$/, '');
  return api === 'https://api.github.com' ? 'https://github.com' : api.replace(/\/api\/v3$/, '');
}

// Every call ends within the timeout, also when the caller gave no signal of its own.
const timedFetch: typeof fetch = (input, init) => {
  const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  return fetch(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout });
};

const quietLog = () => {
  const log = logger();
  return {
    debug: () => undefined,
    info: () => undefined,
    warn: (msg: string) => log.warn({ github: true }, msg),
    error: (msg: string) => log.error({ github: true }, msg),
  };
};

const clients = new Map<string, typeof Octokit>();

/** The Octokit class every GitHub call of this configuration uses: its API URL, a timeout, quiet logs. */
export function octokitClass(config: Config): typeof Octokit {
  let Class = clients.get(config.github.apiUrl);
  if (!Class) {
    Class = Octokit.defaults({ baseUrl: config.github.apiUrl, userAgent: 'rhone', request: { fetch: timedFetch }, log: quietLog() });
    clients.set(config.github.apiUrl, Class);
  }
  return Class;
}

const apps = new WeakMap<Config, App>();

/** The App of this configuration: JWT auth, installation tokens, and OAuth when client credentials are set. */
export function githubApp(config: Config): App {
  if (!githubAppConfigured(config)) throw new GithubNotConfiguredError();
  let app = apps.get(config);
  if (!app) {
    const { appId, privateKey, clientId, clientSecret } = config.github;
    app = new App({
      appId: appId!,
      // Keys given in one line of the environment carry "\n" for their newlines.
      privateKey: privateKey!.replace(/\\n/g, '\n'),
      ...(clientId && clientSecret ? { oauth: { clientId, clientSecret } } : {}),
      Octokit: octokitClass(config),
      log: quietLog(),
    });
    apps.set(config, app);
  }
  return app;
}

/** An installation token with just `permissions`, on one repository when `repo` is given; minted now. */
export async function mintToken(config: Config, installationId: number, permissions: Permissions, repo?: RepoRef): Promise<string> {
  const scope = !repo ? {} : repo.id ? { repository_ids: [repo.id] } : { repositories: [repo.fullName.split('/')[1]] };
  // The App's own client signs this request with its JWT.
  const { data } = await githubApp(config).octokit.request('POST /app/installations/{installation_id}/access_tokens', {
    installation_id: installationId,
    permissions,
    ...scope,
  });
  return data.token;
}

/** A client acting as the installation on one repository, with only `permissions`. */
export async function repoClient(config: Config, installationId: number, repo: RepoRef, permissions: Permissions): Promise<GithubClient> {
  return new (octokitClass(config))({ auth: await mintToken(config, installationId, permissions, repo) });
}

/** A client that may list what the installation grants (metadata: read on all its repositories). */
export async function installationClient(config: Config, installationId: number): Promise<GithubClient> {
  return new (octokitClass(config))({ auth: await mintToken(config, installationId, { metadata: 'read' }) });
}

/** A client acting as a GitHub user, with a user-to-server token (used once, never kept). */
export function userClient(config: Config, token: string): GithubClient {
  return new (octokitClass(config))({ auth: token });
}

/**
 * Every item of a paginated GET, following GitHub's Link headers. `pick` takes the items out of a
 * page: the page itself for plain lists, a field of it for wrapped ones (`repositories`, ...).
 */
export async function allPages<T>(client: GithubClient, url: string, pick: (data: unknown) => T[], max = MAX_ITEMS): Promise<T[]> {
  const items: T[] = [];
  let next: string | undefined = `${url}${url.includes('?') ? '&' : '?'}per_page=100`;
  while (next && items.length < max) {
    const res: { data: unknown; headers: { link?: string } } = await client.request({ method: 'GET', url: next });
    items.push(...pick(res.data));
    next = /<([^>]+)>;\s*rel="next"/.exec(String(res.headers.link ?? ''))?.[1];
  }
  return items.slice(0, max);
}

/** The HTTP status of a GitHub answer that was an error; undefined when GitHub was not reached. */
export function githubStatus(err: unknown): number | undefined {
  const status = (err as { status?: unknown })?.status;
  return typeof status === 'number' && status > 0 ? status : undefined;
}

/** Whether trying again later may help: GitHub unreachable, timing out, rate limiting or failing. */
export function githubTransient(err: unknown): boolean {
  const status = githubStatus(err);
  return status === undefined || status === 429 || status >= 500;
}

/** What may be logged of a GitHub error: never its request (headers, body) or response. */
export function githubErrorForLog(err: unknown): { message: string; status?: number } {
  return { message: (err as Error)?.message ?? String(err), status: githubStatus(err) };
}

/** A GitHub failure as the API reports it: 502 when GitHub failed or was not reached. */
export function githubUnavailable(err: unknown, what: string): AppError {
  return new AppError(
    502,
    'github_unavailable',
    `GitHub did not answer while Rhone was ${what} (${githubErrorForLog(err).message.slice(0, 200)}); try again in a moment.`,
  );
}
