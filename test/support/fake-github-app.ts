// The GitHub App side of the fake GitHub (fake-github.ts): App JWTs checked against the App's public
// key, installations and the repositories they grant, installation tokens narrowed to repositories
// and permissions as GitHub narrows them, branches, commit statuses, the install page, and git's
// smart HTTP protocol (git http-backend over local bare repositories) for clones with a token.
import { createVerify, generateKeyPairSync, randomBytes } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DOCS, notFound, withUser, type FakeGitHub, type FakeRequest, type FakeResponse, type Handler } from './fake-github.ts';
import type { TestRepo } from './git-repo.ts';

type Access = 'read' | 'write';
export type FakePermissions = Record<string, Access>;

export interface FakeRepo {
  id: number;
  owner: string;
  name: string;
  fullName: string;
  private: boolean;
  defaultBranch: string;
  bare: string;
}
export interface FakeInstallation {
  id: number;
  account: { login: string; id: number; type: 'User' | 'Organization' };
  repositorySelection: 'all' | 'selected';
  repoIds: Set<number>;
  /** GitHub users who can see the installation (GET /user/installations). */
  userIds: Set<number>;
  suspendedAt: string | null;
  permissions: FakePermissions;
}
/** repoIds null: every repository the installation grants at the time of each call. */
export interface MintedToken {
  token: string;
  installationId: number;
  repoIds: number[] | null;
  permissions: FakePermissions;
  expiresAt: number;
  body: Record<string, any>;
}
export type OrgRole = 'admin' | 'member' | 'billing_manager';
export interface FakeMembership {
  role: OrgRole;
  state: 'active' | 'pending';
}
export interface PostedStatus {
  repo: string;
  sha: string;
  state: string;
  context: string;
  description?: string;
  target_url?: string;
}

const fail = (status: number, message: string): FakeResponse => ({ status, json: { message, documentation_url: DOCS, status: String(status) } });
const RANK: Record<Access, number> = { read: 1, write: 2 };

const GIT_ENV = {
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Test',
  GIT_AUTHOR_EMAIL: 't@example.com',
  GIT_COMMITTER_NAME: 'Test',
  GIT_COMMITTER_EMAIL: 't@example.com',
};
const git = (args: string[], cwd?: string) => execFileSync('git', args, { cwd, env: { ...process.env, ...GIT_ENV }, encoding: 'utf8' }).trim();

export class FakeGithubApp {
  readonly appId = 424242;
  readonly slug = 'rhone-test';
  readonly privateKey: string;
  private readonly publicKey: string;
  /** Where the install page sends the browser back to (the App's Setup URL). */
  setupUrl = '';
  /** GitHub's page size is 100; tests lower it to see pagination followed. */
  pageSize = 100;
  readonly installations = new Map<number, FakeInstallation>();
  readonly repos = new Map<number, FakeRepo>();
  readonly minted = new Map<string, MintedToken>();
  readonly statuses: PostedStatus[] = [];
  /** Organization memberships: organization login (lower case) → GitHub user id → membership. */
  readonly memberships = new Map<string, Map<number, FakeMembership>>();
  /** git's requests: the path, and the token its Basic credentials carried. */
  readonly gitRequests: { method: string; path: string; token: string | null }[] = [];
  private readonly root = mkdtempSync(path.join(os.tmpdir(), 'rhone-fake-github-'));
  private nextId = 50_000;

  constructor(readonly fake: FakeGitHub) {
    ({ privateKey: this.privateKey, publicKey: this.publicKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    }));
    fake.resetHooks.push(() => this.reset());
    this.routes();
  }

  reset(): void {
    for (const m of [this.installations, this.repos, this.minted, this.memberships]) m.clear();
    this.statuses.length = 0;
    this.gitRequests.length = 0;
    this.pageSize = 100;
    rmSync(this.root, { recursive: true, force: true });
    mkdirSync(this.root);
  }

  /** A repository backed by a bare git repository, filled from `from` when given. */
  addRepo(fullName: string, { from, isPrivate = true }: { from?: TestRepo; isPrivate?: boolean } = {}): FakeRepo {
    const [owner, name] = fullName.split('/');
    const bare = path.join(this.root, owner, `${name}.git`);
    mkdirSync(path.dirname(bare), { recursive: true });
    if (from) git(['clone', '-q', '--bare', from.dir, bare]);
    else git(['init', '-q', '--bare', '-b', 'main', bare]);
    const repo: FakeRepo = { id: this.nextId++, owner, name, fullName, private: isPrivate, defaultBranch: 'main', bare };
    this.repos.set(repo.id, repo);
    return repo;
  }

  /** `git push` of the working repository's HEAD to a branch; returns the pushed commit. */
  push(repo: FakeRepo, from: TestRepo, branch = 'main'): string {
    git(['push', '-q', '--force', repo.bare, `HEAD:refs/heads/${branch}`], from.dir);
    return from.git('rev-parse', 'HEAD');
  }

  /** `login` in the organization `org`, as its owner (role admin), member or billing manager. */
  addMembership(org: string, login: string, role: OrgRole, state: FakeMembership['state'] = 'active'): void {
    const key = org.toLowerCase();
    if (!this.memberships.has(key)) this.memberships.set(key, new Map());
    this.memberships.get(key)!.set(this.fake.user(login).id, { role, state });
  }

  addInstallation(
    account: string,
    repos: FakeRepo[],
    { users = [account], type = 'User', selection = 'selected' }: { users?: string[]; type?: 'User' | 'Organization'; selection?: 'all' | 'selected' } = {},
  ): FakeInstallation {
    // A user account's id is that user's id; an organization has one of its own.
    const known = type === 'User' ? [...this.fake.users.values()].find((u) => u.login.toLowerCase() === account.toLowerCase()) : undefined;
    const installation: FakeInstallation = {
      id: this.nextId++,
      account: { login: account, id: known?.id ?? this.nextId++, type },
      repositorySelection: selection,
      repoIds: new Set(repos.map((r) => r.id)),
      userIds: new Set(users.map((login) => this.fake.user(login).id)),
      suspendedAt: null,
      // members (an organization permission): what lets the App's user tokens read org memberships.
      permissions: { contents: 'read', metadata: 'read', statuses: 'write', members: 'read' },
    };
    this.installations.set(installation.id, installation);
    return installation;
  }

  /**
   * The browser on the App's install page, as `login`: installs it on `account` with `repos`, and
   * returns where GitHub sends the browser next (the Setup URL, with the state passed through).
   */
  install(
    installUrl: string,
    login: string,
    { account = login, repos = [] as FakeRepo[], type = 'User' as 'User' | 'Organization' } = {},
  ): { back: URL; installation: FakeInstallation } {
    const url = new URL(installUrl);
    if (url.origin !== this.fake.url || url.pathname !== `/apps/${this.slug}/installations/new`) throw new Error(`not this App's install page: ${installUrl}`);
    if (!this.setupUrl) throw new Error('the fake App has no Setup URL');
    const installation = this.addInstallation(account, repos, { users: [login], type });
    const back = new URL(this.setupUrl);
    back.searchParams.set('installation_id', String(installation.id));
    back.searchParams.set('setup_action', 'install');
    const state = url.searchParams.get('state');
    if (state !== null) back.searchParams.set('state', state);
    return { back, installation };
  }

  /**
   * The install page, as an organization member who may not install Apps there: GitHub asks the
   * organization's owners to approve, and sends the browser to the Setup URL with setup_action=request
   * and no installation (none exists until an owner approves).
   */
  request(installUrl: string): URL {
    const url = new URL(installUrl);
    if (url.origin !== this.fake.url || url.pathname !== `/apps/${this.slug}/installations/new`) throw new Error(`not this App's install page: ${installUrl}`);
    const back = new URL(this.setupUrl);
    back.searchParams.set('setup_action', 'request');
    const state = url.searchParams.get('state');
    if (state !== null) back.searchParams.set('state', state);
    return back;
  }

  /** The tokens minted so far, in order. */
  tokens(): MintedToken[] {
    return [...this.minted.values()];
  }

  statusesOf(sha: string): PostedStatus[] {
    return this.statuses.filter((s) => s.sha === sha);
  }

  /** Whether the token reaches the repository now: GitHub checks the installation's grants on every call. */
  private reaches(token: MintedToken, repo: FakeRepo): boolean {
    const installation = this.installations.get(token.installationId);
    return Boolean(
      installation && !installation.suspendedAt && installation.repoIds.has(repo.id) && (token.repoIds === null || token.repoIds.includes(repo.id)),
    );
  }

  private repoOf(owner: string, name: string): FakeRepo | undefined {
    return [...this.repos.values()].find((r) => r.fullName.toLowerCase() === `${owner}/${name}`.toLowerCase());
  }

  private installationJson(i: FakeInstallation) {
    return {
      id: i.id,
      account: { login: i.account.login, id: i.account.id, type: i.account.type },
      repository_selection: i.repositorySelection,
      app_id: this.appId,
      app_slug: this.slug,
      target_type: i.account.type,
      permissions: i.permissions,
      suspended_at: i.suspendedAt,
    };
  }

  private repoJson(r: FakeRepo) {
    return { id: r.id, name: r.name, full_name: r.fullName, private: r.private, owner: { login: r.owner }, default_branch: r.defaultBranch };
  }

  /** One page of `items` as GitHub pages: per_page (capped), page, and a Link header to the next. */
  private paged<T>(req: FakeRequest, items: T[], wrap?: (page: T[]) => Record<string, unknown>): FakeResponse {
    const perPage = Math.min(Number(req.query.get('per_page') ?? 30), this.pageSize);
    const pageNo = Number(req.query.get('page') ?? 1);
    const page = items.slice((pageNo - 1) * perPage, pageNo * perPage);
    const headers: Record<string, string> = {};
    if (pageNo * perPage < items.length) {
      const next = new URL(req.path, this.fake.url);
      for (const [k, v] of req.query) next.searchParams.set(k, v);
      next.searchParams.set('page', String(pageNo + 1));
      headers.link = `<${next}>; rel="next"`;
    }
    return { json: wrap ? wrap(page) : page, headers };
  }

  /** Requires a valid App JWT (RS256 under the App's key, iss = the App id, not expired). */
  private withJwt(handler: (req: FakeRequest) => FakeResponse | Promise<FakeResponse>): Handler {
    return (req) => {
      const m = /^bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      const [header, payload, signature] = m ? m[1].split('.') : [];
      if (!signature) return fail(401, 'A JSON web token could not be decoded');
      const ok = createVerify('RSA-SHA256').update(`${header}.${payload}`).verify(this.publicKey, Buffer.from(signature, 'base64url'));
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { iss: string | number; exp: number; iat: number };
      const now = Math.floor(this.fake.now() / 1000);
      if (!ok || String(claims.iss) !== String(this.appId) || claims.exp <= now || claims.exp - claims.iat > 660)
        return fail(401, "'Issuer' claim ('iss') must be an Integer");
      return handler(req);
    };
  }

  /** Requires an installation token that reaches `owner/repo` with at least `need`. */
  private withToken(need: FakePermissions, handler: (req: FakeRequest, repo: FakeRepo, token: MintedToken) => FakeResponse | Promise<FakeResponse>): Handler {
    return (req) => {
      const m = /^(?:token|bearer)\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      const token = m ? this.minted.get(m[1]) : undefined;
      if (!token || token.expiresAt <= this.fake.now()) return fail(401, 'Bad credentials');
      const repo = this.repoOf(req.params.owner, req.params.repo);
      if (!repo || !this.reaches(token, repo)) return notFound();
      for (const [name, access] of Object.entries(need)) {
        if (!token.permissions[name] || RANK[token.permissions[name]] < RANK[access]) return fail(403, 'Resource not accessible by integration');
      }
      return handler(req, repo, token);
    };
  }

  private mint(req: FakeRequest): FakeResponse {
    const installation = this.installations.get(Number(req.params.id));
    if (!installation) return notFound();
    if (installation.suspendedAt) return fail(403, 'This installation has been suspended');
    const body = req.body as { repositories?: string[]; repository_ids?: number[]; permissions?: FakePermissions };
    const granted = [...installation.repoIds];
    let repoIds: number[] | null = null;
    if (body.repositories || body.repository_ids) {
      const wanted = [...(body.repository_ids ?? []), ...(body.repositories ?? []).map((name) => this.repoOf(installation.account.login, name)?.id ?? -1)];
      if (wanted.some((id) => !granted.includes(id)))
        return fail(422, 'There is at least one repository that does not exist or is not accessible to the parent installation.');
      repoIds = wanted;
    }
    const permissions = body.permissions ?? installation.permissions;
    for (const [name, access] of Object.entries(permissions)) {
      const has = installation.permissions[name];
      if (!has || RANK[has] < RANK[access]) return fail(422, `The permissions requested are not granted to this installation.`);
    }
    const token: MintedToken = {
      token: `ghs_${randomBytes(27).toString('base64url')}`,
      installationId: installation.id,
      repoIds,
      permissions,
      expiresAt: this.fake.now() + 3600_000,
      body,
    };
    this.minted.set(token.token, token);
    return {
      status: 201,
      json: {
        token: token.token,
        expires_at: new Date(token.expiresAt).toISOString(),
        permissions,
        repository_selection: repoIds ? 'selected' : installation.repositorySelection,
        ...(repoIds ? { repositories: repoIds.map((id) => this.repoJson(this.repos.get(id)!)) } : {}),
      },
    };
  }

  private routes(): void {
    const { fake } = this;
    fake.route(
      'GET',
      '/app',
      this.withJwt(() => ({ json: { id: this.appId, slug: this.slug, name: 'Rhone (test)', html_url: `${fake.url}/apps/${this.slug}` } })),
    );
    fake.route(
      'GET',
      '/app/installations/:id',
      this.withJwt((req) => {
        const installation = this.installations.get(Number(req.params.id));
        return installation ? { json: this.installationJson(installation) } : notFound();
      }),
    );
    fake.route(
      'POST',
      '/app/installations/:id/access_tokens',
      this.withJwt((req) => this.mint(req)),
    );
    fake.route(
      'GET',
      '/user/installations',
      withUser((req, user) => {
        const mine = [...this.installations.values()].filter((i) => i.userIds.has(user.id)).map((i) => this.installationJson(i));
        return this.paged(req, mine, (page) => ({ total_count: mine.length, installations: page }));
      }),
    );
    // GET /user/memberships/orgs/{org}, with a user-to-server token of this App. GitHub's spec
    // (operation orgs/get-membership-for-authenticated-user): "If the authenticated user is an active
    // or pending member of the organization, this endpoint will return the user's membership. If the
    // authenticated user is not affiliated with the organization, a 404 is returned." A user token of
    // a GitHub App can do no more than the App itself (octokit/octokit.js discussion #2139: "user-to-
    // server tokens are limited by the app's access and permissions"): where the App is not installed
    // the organization is not visible (404), and where its installation lacks the Members
    // organization permission the read is refused (403, "Resource not accessible by integration").
    // That last rule is not spelled out by GitHub for this endpoint; the fake takes the stricter side.
    fake.route(
      'GET',
      '/user/memberships/orgs/:org',
      withUser((req, user) => {
        const org = req.params.org.toLowerCase();
        const installation = [...this.installations.values()].find((i) => i.account.type === 'Organization' && i.account.login.toLowerCase() === org);
        const membership = this.memberships.get(org)?.get(user.id);
        if (!installation || !membership) return notFound();
        if (!installation.permissions.members) return fail(403, 'Resource not accessible by integration');
        const login = installation.account.login;
        return {
          json: {
            url: `${fake.url}/orgs/${login}/memberships/${user.login}`,
            state: membership.state,
            role: membership.role,
            organization_url: `${fake.url}/orgs/${login}`,
            organization: { login, id: installation.account.id, url: `${fake.url}/orgs/${login}` },
            user: { login: user.login, id: user.id, type: 'User' },
          },
        };
      }),
    );
    fake.route('GET', '/installation/repositories', (req) => {
      const m = /^(?:token|bearer)\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      const token = m ? this.minted.get(m[1]) : undefined;
      if (!token || token.expiresAt <= fake.now()) return fail(401, 'Bad credentials');
      const repos = [...this.repos.values()].filter((r) => this.reaches(token, r)).map((r) => this.repoJson(r));
      return this.paged(req, repos, (page) => ({ total_count: repos.length, repositories: page }));
    });
    fake.route(
      'GET',
      '/repos/:owner/:repo/branches',
      this.withToken({ metadata: 'read' }, (req, repo) => {
        const refs = git(['for-each-ref', '--format=%(refname:short) %(objectname)', 'refs/heads'], repo.bare).split('\n').filter(Boolean);
        const branches = refs.map((line) => {
          const [name, sha] = line.split(' ');
          return { name, commit: { sha, url: `${fake.url}/repos/${repo.fullName}/commits/${sha}` }, protected: false };
        });
        return this.paged(req, branches);
      }),
    );
    fake.route(
      'POST',
      '/repos/:owner/:repo/statuses/:sha',
      this.withToken({ statuses: 'write' }, (req, repo) => {
        const body = req.body as PostedStatus;
        if (!/^[0-9a-f]{40}$/.test(req.params.sha) || !['pending', 'success', 'failure', 'error'].includes(body.state)) return fail(422, 'Validation Failed');
        if (body.description && body.description.length > 140) return fail(422, 'description is too long (maximum is 140 characters)');
        this.statuses.push({
          repo: repo.fullName,
          sha: req.params.sha,
          state: body.state,
          context: body.context,
          description: body.description,
          target_url: body.target_url,
        });
        return { status: 201, json: { id: this.statuses.length, state: body.state, context: body.context } };
      }),
    );
    const gitRoute = (req: FakeRequest) => this.gitHttp(req);
    fake.route('GET', '/:owner/:repo/info/refs', gitRoute);
    fake.route('POST', '/:owner/:repo/git-upload-pack', gitRoute);
  }

  /** Smart HTTP for clones: Basic credentials x-access-token:<installation token with contents:read on the repository>. */
  private async gitHttp(req: FakeRequest): Promise<FakeResponse> {
    const basic = /^basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const [user, token] = basic ? Buffer.from(basic[1], 'base64').toString('utf8').split(':') : [];
    this.gitRequests.push({ method: req.method, path: req.path + (req.query.size ? `?${req.query}` : ''), token: token ?? null });
    const challenge = { status: 401, text: 'Authentication required\n', headers: { 'www-authenticate': 'Basic realm="GitHub"' } };
    const name = req.params.repo.replace(/\.git$/, '');
    const repo = this.repoOf(req.params.owner, name);
    if (!repo || !req.params.repo.endsWith('.git')) return { status: 404, text: 'Repository not found.\n' };
    const minted = token ? this.minted.get(token) : undefined;
    if (user !== 'x-access-token' || !minted || minted.expiresAt <= this.fake.now()) return challenge;
    if (!this.reaches(minted, repo) || !minted.permissions.contents) return { status: 404, text: 'Repository not found.\n' };
    return runHttpBackend(this.root, `/${repo.owner}/${repo.name}.git${req.path.slice(req.path.indexOf('.git/') + 4)}`, req);
  }
}

/** Runs `git http-backend` (CGI) for one request. */
function runHttpBackend(root: string, pathInfo: string, req: FakeRequest): Promise<FakeResponse> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH,
        ...GIT_ENV,
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: pathInfo,
        REQUEST_METHOD: req.method,
        QUERY_STRING: req.query.toString(),
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        CONTENT_LENGTH: String(req.bytes.length),
        HTTP_CONTENT_ENCODING: String(req.headers['content-encoding'] ?? ''),
        GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
        REMOTE_USER: 'x-access-token',
        REMOTE_ADDR: '127.0.0.1',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const all = Buffer.concat(out);
      const sep = all.indexOf('\r\n\r\n');
      if (sep < 0) return resolve({ status: 500, text: `git http-backend failed (${code}): ${stderr}` });
      const headers: Record<string, string> = {};
      let status = 200;
      for (const line of all.subarray(0, sep).toString('utf8').split('\r\n')) {
        const i = line.indexOf(':');
        const key = line.slice(0, i).trim().toLowerCase();
        const value = line.slice(i + 1).trim();
        if (key === 'status') status = Number(value.split(' ')[0]);
        else headers[key] = value;
      }
      resolve({ status, headers, bytes: all.subarray(sep + 4) });
    });
    child.stdin.end(req.bytes);
  });
}
