// The authorization table: every /api route, called as nobody, as a user of another team, as each
// role of the team, and as an admin holding an API token of each scope (no cookies, no CSRF
// header). Each case starts from a fresh world, and a refused call must leave every table exactly
// as it was. A token gets what its holder's role would, if its scope covers the route: read covers
// GETs, deploy adds deploying, canceling and rolling back, admin everything else; no token may
// create, list or revoke tokens (only a browser session can).
import assert from 'node:assert/strict';
import { db } from '../backend/db.ts';
import { getConfig } from '../backend/config.ts';
import { listRoutes } from '../backend/app.ts';
import { deleteApp } from '../backend/commands/apps.ts';
import { putEnv } from '../backend/commands/env.ts';
import { invite } from '../backend/commands/invitations.ts';
import { createToken } from '../backend/commands/tokens.ts';
import { App, AuditEvent, TeamMember, type Team, type User } from '../backend/models/index.ts';
import type { Actor } from '../backend/middleware/auth.ts';
import { addMember, makeApp, makeTeam, makeUser } from './factories.ts';
import { takeSnapshot } from '../backend/deployments/snapshot.ts';
import { TestRepo } from './support/git-repo.ts';
import { Client, signedIn, startTestServer, type Res, type TestServer } from './http.ts';
import { startLocalRuntime, type LocalRuntime } from '../local/main.ts';
import { tempDataDir } from './local-helpers.ts';

type Role = 'owner' | 'admin' | 'member';
/** The columns of the table: who calls. */
type Who = 'nobody' | 'other' | Role;
type Scope = 'read' | 'deploy' | 'admin';
/** Who calls, and how: a session cookie, or (<scope>-token) a Bearer API token of adam, an admin. */
type Caller = Who | `${Scope}-token`;
type Person = Role | 'other';
const SCOPES: Scope[] = ['read', 'deploy', 'admin'];
/** The least scope a route needs: GETs read, other methods admin, unless a row says otherwise. */
type Needs = Scope | 'session';

const LOGIN: Record<Person | 'target', string> = { owner: 'olive', admin: 'adam', member: 'mia', other: 'otto', target: 'tara' };
const CALLERS: Caller[] = ['nobody', 'other', 'owner', 'admin', 'member', 'read-token', 'deploy-token', 'admin-token'];

interface World {
  users: Record<Person | 'target', User>;
  /** "acme": olive owner, adam admin, mia and tara members; has app "acme-web" with one env var. */
  team: Team;
  /** "beta": otto's team, which has invited olive, adam and mia. */
  otherTeam: Team;
  app: App;
  /** One live API token per person, made before the call. */
  tokenIds: Record<Person, string>;
  /** An open invitation addressed to each person (to beta, and for otto to acme). */
  invitationTo: Record<Person, string>;
  /** acme's open invitation to "ivan", who has no account. */
  teamInvitationId: string;
  /** acme-web's deployments: #1 went live with an image, #2 is queued. */
  liveDeploymentId: string;
  queuedDeploymentId: string;
}

// acme-web deploys from a real (local) repository, so asking for a deploy can resolve its branch.
let repo: TestRepo | undefined;
function sourceRepo(): TestRepo {
  if (!repo) {
    repo = new TestRepo();
    repo.write('index.html', '<h1>acme</h1>').commit('first');
  }
  return repo;
}

const actor = (user: User): Actor => ({ user, via: 'session' });

async function buildWorld(): Promise<World> {
  // Independent rows are made concurrently: this runs before each of the ~160 cases.
  const people = Object.keys(LOGIN) as (Person | 'target')[];
  const made = await Promise.all(people.map((key) => makeUser(LOGIN[key])));
  const users = Object.fromEntries(people.map((key, i) => [key, made[i]])) as Record<Person | 'target', User>;
  const [team, otherTeam] = await Promise.all([makeTeam(users.owner, 'acme'), makeTeam(users.other, 'beta')]);
  // Both teams have several members: on Pro, whose member count is unlimited (Free has one seat).
  await db()('teams').whereIn('id', [team.id, otherTeam.id]).update({ plan: 'pro' });
  const [app] = await Promise.all([
    makeApp(users.owner, team, 'acme-web', { source: { type: 'git', url: sourceRepo().url, branch: 'main' } }),
    addMember(team, users.admin, 'admin'),
    addMember(team, users.member, 'member'),
    addMember(team, users.target, 'member'),
  ]);
  const fromBeta = (login: string) => invite(db(), actor(users.other), 'owner', otherTeam, login, 'member');
  const fromAcme = (login: string) => invite(db(), actor(users.owner), 'owner', team, login, 'member');
  const [toOwner, toAdmin, toMember, toOther, toIvan] = await Promise.all([
    fromBeta(LOGIN.owner),
    fromBeta(LOGIN.admin),
    fromBeta(LOGIN.member),
    fromAcme(LOGIN.other),
    fromAcme('ivan'),
    putEnv(db(), getConfig().encryptionKeys, actor(users.owner), team, app, { SECRET_KEY: 'hunter2' }),
  ]);
  const tokens = await Promise.all(
    (['owner', 'admin', 'member', 'other'] as const).map((who) => createToken(db(), actor(users[who]), { name: `${who} laptop` })),
  );
  const snapshot = JSON.stringify(await takeSnapshot(db(), app));
  const deployment = (number: number, status: string, image: string | null) => ({
    appId: app.id,
    number,
    status,
    trigger: 'manual',
    ref: 'main',
    commitSha: 'a'.repeat(40),
    configSnapshot: snapshot,
    image,
    triggeredBy: users.owner.id,
  });
  const [live, queued] = (await db()('deployments')
    .insert([deployment(1, 'live', 'rhone-local/acme-web:one'), deployment(2, 'queued', null)])
    .returning('id')) as { id: string }[];
  return {
    users,
    team,
    otherTeam,
    app,
    tokenIds: { owner: tokens[0].row.id, admin: tokens[1].row.id, member: tokens[2].row.id, other: tokens[3].row.id },
    invitationTo: { owner: toOwner.id, admin: toAdmin.id, member: toMember.id, other: toOther.id },
    teamInvitationId: toIvan.id,
    liveDeploymentId: live.id,
    queuedDeploymentId: queued.id,
  };
}

/** Whose token or invitation a caller reaches for: their own, but "other" tries the owner's. */
const own = (who: Who): Person => (who === 'nobody' || who === 'other' ? 'owner' : who);

interface Call {
  path: string;
  body?: unknown;
}

interface Row {
  route: string;
  call(w: World, who: Who): Call;
  expect: Record<Who, number>;
  /** Runs before the caller signs in, to put the world in the state the call needs. */
  prepare?(w: World): Promise<void>;
  /** Extra assertions on a 2xx answer. */
  check?(res: Res, w: World, who: Who): void;
  /** The least token scope the route needs, when not the default for its method; 'session': no token at all. */
  needs?: Needs;
}

const scopeRank = (s: Needs) => ({ read: 1, deploy: 2, admin: 3, session: 4 })[s];

/** What a caller gets: a token caller what adam (an admin) gets, when its scope covers the route. */
function expectedFor(row: Row, caller: Caller): number {
  if (!caller.endsWith('-token')) return row.expect[caller as Who];
  const scope = caller.replace('-token', '') as Scope;
  const needs = row.needs ?? (row.route.startsWith('GET ') ? 'read' : 'admin');
  return scopeRank(scope) >= scopeRank(needs) ? row.expect.admin : 403;
}

interface Named {
  login: string;
}

/** An installation of the GitHub App connected to the team, granting repository acme/site. */
async function githubRepoOf(team: Team): Promise<void> {
  await db()('githubInstallations').insert({ id: 7001, teamId: team.id, accountLogin: 'acme', accountType: 'Organization' });
  await db()('githubInstallationRepositories').insert({ installationId: 7001, repositoryId: 9001, fullName: 'acme/site', defaultBranch: 'main' });
}

const DOMAIN = 'www.acme-web.localhost';

/** A domain of the app whose certificate was never requested (as if Fly had been down). */
async function domainOf(app: App): Promise<void> {
  await db()('domains').insert({ appId: app.id, hostname: DOMAIN, status: 'pending_dns', nextCheckAt: new Date() });
}

const APP_BODY = { name: 'Fresh', slug: 'fresh-app', source: { type: 'git', url: 'file:///tmp/fresh.git', branch: 'main' } };

const TABLE: Row[] = [
  // The caller's own things: every signed-in user gets their own data, never someone else's.
  {
    route: 'GET /api/me',
    call: () => ({ path: '/api/me' }),
    expect: { nobody: 401, other: 200, owner: 200, admin: 200, member: 200 },
    check(res, _w, who) {
      const body = res.body as { user: Named; teams: { slug: string; role: string; can: string[] }[] };
      assert.equal(body.user.login, LOGIN[who as Person]);
      const acme = body.teams.find((t) => t.slug === 'acme');
      assert.equal(acme?.role, who === 'other' ? undefined : who);
      // What the dashboard offers follows the role: the same table the API enforces.
      if (acme) {
        const offered = (action: string) => acme.can.includes(action);
        assert.deepEqual(
          ['deployment:create', 'env:read', 'env:reveal', 'app:create', 'audit:read', 'team:delete', 'billing:manage'].map(offered),
          {
            member: [true, true, false, false, false, false, false],
            admin: [true, true, true, true, true, false, false],
            owner: [true, true, true, true, true, true, true],
          }[acme.role as 'member'],
        );
      }
    },
  },
  {
    route: 'GET /api/tokens',
    needs: 'session',
    call: () => ({ path: '/api/tokens' }),
    expect: { nobody: 401, other: 200, owner: 200, admin: 200, member: 200 },
    check(res, w, who) {
      const ids = (res.body as { items: { id: string }[] }).items.map((t) => t.id);
      assert.ok(ids.includes(w.tokenIds[who as Person]), "lists the caller's token");
      if (who !== 'owner') assert.ok(!ids.includes(w.tokenIds.owner), "never lists another user's token");
    },
  },
  {
    route: 'POST /api/tokens',
    needs: 'session',
    call: () => ({ path: '/api/tokens', body: { name: 'ci' } }),
    expect: { nobody: 401, other: 201, owner: 201, admin: 201, member: 201 },
    check: (res) => assert.match((res.body as { token: string }).token, /^rhone_/),
  },
  {
    route: 'DELETE /api/tokens/:id',
    needs: 'session',
    call: (w, who) => ({ path: `/api/tokens/${w.tokenIds[own(who)]}` }),
    expect: { nobody: 401, other: 404, owner: 204, admin: 204, member: 204 },
  },
  {
    route: 'GET /api/invitations',
    call: () => ({ path: '/api/invitations' }),
    expect: { nobody: 401, other: 200, owner: 200, admin: 200, member: 200 },
    check(res, _w, who) {
      const items = (res.body as { items: Named[] }).items;
      assert.equal(items.length, 1);
      assert.equal(items[0].login, LOGIN[who as Person]);
    },
  },
  {
    route: 'POST /api/invitations/:id/accept',
    call: (w, who) => ({ path: `/api/invitations/${w.invitationTo[own(who)]}/accept` }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    check: (res) => assert.deepEqual([(res.body as { slug: string }).slug, (res.body as { role: string }).role], ['beta', 'member']),
  },
  {
    route: 'POST /api/invitations/:id/decline',
    call: (w, who) => ({ path: `/api/invitations/${w.invitationTo[own(who)]}/decline` }),
    expect: { nobody: 401, other: 404, owner: 204, admin: 204, member: 204 },
  },
  {
    route: 'POST /api/teams',
    call: () => ({ path: '/api/teams', body: { slug: 'newco', name: 'New Co' } }),
    expect: { nobody: 401, other: 201, owner: 201, admin: 201, member: 201 },
    check: (res) => assert.equal((res.body as { role: string }).role, 'owner'),
  },

  // The team.
  {
    route: 'GET /api/teams/:team',
    call: () => ({ path: '/api/teams/acme' }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    check: (res, _w, who) => assert.equal((res.body as { role: string }).role, who),
  },
  {
    route: 'PATCH /api/teams/:team',
    call: () => ({ path: '/api/teams/acme', body: { name: 'Acme Two' } }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 403, member: 403 },
    check: (res) => assert.equal((res.body as { name: string }).name, 'Acme Two'),
  },
  {
    route: 'DELETE /api/teams/:team',
    // A team with apps cannot be deleted (tested below), so this one has none left.
    prepare: async (w) => deleteApp(db(), { connection: { url: getConfig().redisUrl, maxRetriesPerRequest: null } }, actor(w.users.owner), w.team, w.app),
    call: () => ({ path: '/api/teams/acme' }),
    expect: { nobody: 401, other: 404, owner: 204, admin: 403, member: 403 },
  },

  // Members: everyone sees them; admins and owners change roles and remove others.
  {
    route: 'GET /api/teams/:team/members',
    call: () => ({ path: '/api/teams/acme/members' }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    check(res) {
      const members = (res.body as { items: (Named & { role: string })[] }).items.map((m) => `${m.login}:${m.role}`).sort();
      assert.deepEqual(members, ['adam:admin', 'mia:member', 'olive:owner', 'tara:member']);
    },
  },
  {
    route: 'PATCH /api/teams/:team/members/:login',
    call: () => ({ path: `/api/teams/acme/members/${LOGIN.target}`, body: { role: 'admin' } }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 403 },
    check: (res) => assert.deepEqual([(res.body as Named).login, (res.body as { role: string }).role], ['tara', 'admin']),
  },
  {
    route: 'DELETE /api/teams/:team/members/:login',
    call: () => ({ path: `/api/teams/acme/members/${LOGIN.target}` }),
    expect: { nobody: 401, other: 404, owner: 204, admin: 204, member: 403 },
  },

  // Invitations of the team: admins and owners.
  {
    route: 'GET /api/teams/:team/invitations',
    call: () => ({ path: '/api/teams/acme/invitations' }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 403 },
    check: (res) => assert.deepEqual((res.body as { items: Named[] }).items.map((i) => i.login).sort(), ['ivan', 'otto']),
  },
  {
    route: 'POST /api/teams/:team/invitations',
    call: () => ({ path: '/api/teams/acme/invitations', body: { login: 'ivy', role: 'admin' } }),
    expect: { nobody: 401, other: 404, owner: 201, admin: 201, member: 403 },
    check: (res) => assert.deepEqual([(res.body as Named).login, (res.body as { role: string }).role], ['ivy', 'admin']),
  },
  {
    route: 'DELETE /api/teams/:team/invitations/:id',
    call: (w) => ({ path: `/api/teams/acme/invitations/${w.teamInvitationId}` }),
    expect: { nobody: 401, other: 404, owner: 204, admin: 204, member: 403 },
  },

  // Apps: every member reads them; admins and owners create, change and delete.
  {
    route: 'GET /api/teams/:team/apps',
    call: () => ({ path: '/api/teams/acme/apps' }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    check: (res) =>
      assert.deepEqual(
        (res.body as { items: { slug: string }[] }).items.map((a) => a.slug),
        ['acme-web'],
      ),
  },
  {
    route: 'POST /api/teams/:team/apps',
    call: () => ({ path: '/api/teams/acme/apps', body: APP_BODY }),
    expect: { nobody: 401, other: 404, owner: 201, admin: 201, member: 403 },
    check: (res) => assert.deepEqual([(res.body as { slug: string }).slug, (res.body as { team: string }).team], ['fresh-app', 'acme']),
  },
  {
    route: 'GET /api/apps/:app',
    call: () => ({ path: '/api/apps/acme-web' }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    check: (res) => assert.equal((res.body as { slug: string }).slug, 'acme-web'),
  },
  {
    route: 'GET /api/apps/:app/instances',
    call: () => ({ path: '/api/apps/acme-web/instances' }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    check: (res) => assert.deepEqual(res.body, { items: [], next: null }),
  },
  {
    route: 'GET /api/teams/:team/latest-deployments',
    call: () => ({ path: '/api/teams/acme/latest-deployments' }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    check(res) {
      const items = (res.body as { items: { app: string; latest: { number: number }; live: { number: number } | null }[] }).items;
      assert.deepEqual(
        items.map((i) => [i.app, i.latest.number, i.live?.number]),
        [['acme-web', 2, 1]],
      );
    },
  },
  {
    route: 'PATCH /api/apps/:app',
    call: () => ({ path: '/api/apps/acme-web', body: { name: 'Renamed', instanceCount: 2 } }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 403 },
    check: (res) => assert.deepEqual([(res.body as { name: string }).name, (res.body as { instanceCount: number }).instanceCount], ['Renamed', 2]),
  },
  {
    route: 'DELETE /api/apps/:app',
    call: () => ({ path: '/api/apps/acme-web' }),
    expect: { nobody: 401, other: 404, owner: 204, admin: 204, member: 403 },
  },

  // Env vars: members see names with masked values; admins and owners change them.
  {
    route: 'GET /api/apps/:app/env',
    call: () => ({ path: '/api/apps/acme-web/env' }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    check(res) {
      const items = (res.body as { items: { name: string; value: string | null; revealed: boolean }[] }).items;
      assert.deepEqual(
        items.map(({ name, value, revealed }) => ({ name, value, revealed })),
        [{ name: 'SECRET_KEY', value: null, revealed: false }],
      );
    },
  },
  {
    route: 'PUT /api/apps/:app/env',
    call: () => ({ path: '/api/apps/acme-web/env', body: { vars: { NEW_VAR: 'x', SECRET_KEY: null } } }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 403 },
    check: (res) =>
      assert.deepEqual(
        (res.body as { items: { name: string }[] }).items.map((v) => v.name),
        ['NEW_VAR'],
      ),
  },

  // Custom domains: members read them; admins and owners add, check and remove. The local
  // runtime answers the certificate calls (a .localhost name is active at once, on any plan).
  {
    route: 'GET /api/apps/:app/domains',
    prepare: (w) => domainOf(w.app),
    call: () => ({ path: '/api/apps/acme-web/domains' }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    check: (res) =>
      assert.deepEqual(
        (res.body as { items: { hostname: string }[] }).items.map((d) => d.hostname),
        [DOMAIN],
      ),
  },
  {
    route: 'POST /api/apps/:app/domains',
    call: () => ({ path: '/api/apps/acme-web/domains', body: { hostname: DOMAIN } }),
    expect: { nobody: 401, other: 404, owner: 201, admin: 201, member: 403 },
    check: (res) => assert.deepEqual([(res.body as { hostname: string }).hostname, (res.body as { status: string }).status], [DOMAIN, 'active']),
  },
  {
    route: 'GET /api/apps/:app/domains/:hostname',
    prepare: (w) => domainOf(w.app),
    call: () => ({ path: `/api/apps/acme-web/domains/${DOMAIN}` }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    check: (res) => assert.equal((res.body as { status: string }).status, 'pending_dns'),
  },
  {
    route: 'POST /api/apps/:app/domains/:hostname/check',
    prepare: (w) => domainOf(w.app),
    call: () => ({ path: `/api/apps/acme-web/domains/${DOMAIN}/check` }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 403 },
    check: (res) => assert.equal((res.body as { status: string }).status, 'active'),
  },
  {
    route: 'DELETE /api/apps/:app/domains/:hostname',
    prepare: (w) => domainOf(w.app),
    call: () => ({ path: `/api/apps/acme-web/domains/${DOMAIN}` }),
    expect: { nobody: 401, other: 404, owner: 204, admin: 204, member: 403 },
  },

  // Deployments: every role deploys, cancels, rolls back and reads them.
  {
    route: 'POST /api/apps/:app/deploy',
    needs: 'deploy',
    call: () => ({ path: '/api/apps/acme-web/deploy', body: {} }),
    expect: { nobody: 401, other: 404, owner: 202, admin: 202, member: 202 },
    check: (res) => assert.deepEqual([(res.body as { status: string }).status, (res.body as { number: number }).number], ['queued', 3]),
  },
  {
    route: 'GET /api/apps/:app/deployments',
    call: () => ({ path: '/api/apps/acme-web/deployments' }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    check: (res) =>
      assert.deepEqual(
        (res.body as { items: { number: number }[] }).items.map((d) => d.number),
        [2, 1],
      ),
  },
  {
    route: 'GET /api/deployments/:id',
    call: (w) => ({ path: `/api/deployments/${w.liveDeploymentId}` }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    check: (res) => assert.equal((res.body as { status: string }).status, 'live'),
  },
  {
    route: 'POST /api/deployments/:id/cancel',
    needs: 'deploy',
    call: (w) => ({ path: `/api/deployments/${w.queuedDeploymentId}/cancel`, body: {} }),
    expect: { nobody: 401, other: 404, owner: 202, admin: 202, member: 202 },
    check: (res) => assert.equal((res.body as { status: string }).status, 'canceled'),
  },
  {
    route: 'POST /api/deployments/:id/rollback',
    needs: 'deploy',
    call: (w) => ({ path: `/api/deployments/${w.liveDeploymentId}/rollback`, body: {} }),
    expect: { nobody: 401, other: 404, owner: 202, admin: 202, member: 202 },
    check: (res) => assert.equal((res.body as { trigger: string }).trigger, 'rollback'),
  },
  {
    route: 'GET /api/deployments/:id/events',
    call: (w) => ({ path: `/api/deployments/${w.liveDeploymentId}/events` }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
  },
  {
    route: 'GET /api/deployments/:id/logs',
    call: (w) => ({ path: `/api/deployments/${w.liveDeploymentId}/logs` }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
  },

  // GitHub: every member sees the team's installations and picks repositories (creating the app is
  // what needs an admin). This api has no GitHub App configured: a member's branch listing gets as
  // far as asking GitHub, which is what shows it was allowed.
  {
    route: 'GET /api/teams/:team/github/installations',
    call: () => ({ path: '/api/teams/acme/github/installations' }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    check: (res) => assert.deepEqual(res.body, { configured: false, installUrl: null, items: [] }),
  },
  {
    route: 'GET /api/teams/:team/github/repos',
    prepare: (w) => githubRepoOf(w.team),
    call: () => ({ path: '/api/teams/acme/github/repos' }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    check: (res) =>
      assert.deepEqual(
        (res.body as { items: { fullName: string }[] }).items.map((r) => r.fullName),
        ['acme/site'],
      ),
  },
  {
    route: 'GET /api/teams/:team/github/repos/:owner/:repo/branches',
    prepare: (w) => githubRepoOf(w.team),
    call: () => ({ path: '/api/teams/acme/github/repos/acme/site/branches' }),
    expect: { nobody: 401, other: 404, owner: 503, admin: 503, member: 503 },
  },

  // Billing: members see the plan; only owners change it. This api runs without Stripe (local
  // mode): Checkout and the portal answer 409 stripe_not_configured, the plan changes directly.
  {
    route: 'GET /api/teams/:team/billing',
    call: () => ({ path: '/api/teams/acme/billing' }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    check: (res) => assert.deepEqual([(res.body as { plan: string }).plan, (res.body as { changePlanVia: string }).changePlanVia], ['pro', 'local']),
  },
  {
    route: 'POST /api/teams/:team/billing/checkout',
    call: () => ({ path: '/api/teams/acme/billing/checkout', body: { plan: 'starter' } }),
    expect: { nobody: 401, other: 404, owner: 409, admin: 403, member: 403 },
  },
  {
    route: 'POST /api/teams/:team/billing/portal',
    call: () => ({ path: '/api/teams/acme/billing/portal', body: {} }),
    expect: { nobody: 401, other: 404, owner: 409, admin: 403, member: 403 },
  },
  {
    route: 'PUT /api/teams/:team/billing/plan',
    call: () => ({ path: '/api/teams/acme/billing/plan', body: { plan: 'starter' } }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 403, member: 403 },
    check: (res) => assert.equal((res.body as { plan: string }).plan, 'starter'),
  },

  // The audit log: admins and owners.
  {
    route: 'GET /api/teams/:team/audit',
    call: () => ({ path: '/api/teams/acme/audit' }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 403 },
    check(res) {
      const actions = (res.body as { items: { action: string }[] }).items.map((e) => e.action);
      assert.ok(actions.includes('app.created') && actions.includes('env.updated'), `audit actions: ${actions.join(', ')}`);
    },
  },
  // Usage and alerts: members read them; the spend cap is the owners'.
  {
    route: 'GET /api/teams/:team/usage',
    call: () => ({ path: '/api/teams/acme/usage?period=2026-11' }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    check(res) {
      const body = res.body as { period: string; periodStart: string; meters: { meter: string }[] };
      assert.deepEqual(
        [body.period, body.periodStart, body.meters.map((m) => m.meter)],
        ['2026-11', '2026-11-01T00:00:00.000Z', ['machine_seconds', 'bandwidth', 'builds']],
      );
    },
  },
  {
    route: 'PUT /api/teams/:team/billing/spend-cap',
    call: () => ({ path: '/api/teams/acme/billing/spend-cap', body: { capCents: 5000 } }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 403, member: 403 },
    check: (res) => assert.deepEqual(res.body, { capCents: 5000 }),
  },
  {
    route: 'GET /api/teams/:team/notifications',
    call: () => ({ path: '/api/teams/acme/notifications' }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    prepare: notifyAcme,
    check(res, _w, who) {
      const kinds = (res.body as { items: { kind: string }[] }).items.map((n) => n.kind).sort();
      // Owner alerts reach owners only.
      assert.deepEqual(kinds, who === 'owner' ? ['for-members', 'for-owners'] : ['for-members']);
    },
  },
  {
    route: 'POST /api/teams/:team/notifications/:id/read',
    call: () => ({ path: `/api/teams/acme/notifications/${notificationIds['for-members']}/read` }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    prepare: notifyAcme,
    check: (res) => assert.equal((res.body as { read: boolean }).read, true),
  },
  {
    route: 'POST /api/teams/:team/notifications/read-all',
    call: () => ({ path: '/api/teams/acme/notifications/read-all' }),
    expect: { nobody: 401, other: 404, owner: 200, admin: 200, member: 200 },
    prepare: notifyAcme,
    check: (res, _w, who) => assert.deepEqual(res.body, { marked: who === 'owner' ? 2 : 1 }),
  },
];

/** Ids of acme's notifications, by kind, made by notifyAcme. */
const notificationIds: Record<string, string> = {};

/** One notification for every member of acme and one for its owners. */
async function notifyAcme(w: World): Promise<void> {
  const rows = (await db()('notifications')
    .insert([
      { teamId: w.team.id, minRole: 'member', kind: 'for-members', title: 'Hello', dedupeKey: 'm' },
      { teamId: w.team.id, minRole: 'owner', kind: 'for-owners', title: 'Quota', dedupeKey: 'o' },
    ])
    .returning(['id', 'kind'])) as { id: number; kind: string }[];
  for (const r of rows) notificationIds[r.kind] = String(r.id);
}

const ERROR_CODE: Record<number, string> = {
  401: 'unauthenticated',
  403: 'forbidden',
  404: 'not_found',
  409: 'stripe_not_configured',
  503: 'github_not_configured',
};

/** "/api/teams/:team/apps" → a regexp its concrete paths match, so a row cannot call the wrong route. */
function patternOf(path: string): RegExp {
  return new RegExp(
    `^${path
      .split('/')
      .map((part) => (part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('/')}$`,
  );
}

let tables: string[] = [];

/** A digest of every row of every table (a token's last use aside, which any Bearer call records). */
async function snapshot(): Promise<Record<string, string>> {
  const parts = tables.map(
    (t) => `select '${t}' as t, md5(coalesce(string_agg(r, '|' order by r), '')) as h from (select (to_jsonb(x) - 'last_used_at')::text as r from "${t}" x) s`,
  );
  const { rows } = (await db().raw(parts.join(' union all '))) as { rows: { t: string; h: string }[] };
  return Object.fromEntries(rows.map((r) => [r.t, r.h]));
}

function changedTables(before: Record<string, string>, after: Record<string, string>): string[] {
  return tables.filter((t) => before[t] !== after[t]);
}

describe('authorization table', () => {
  let server: TestServer;
  let world: World;
  let runtime: LocalRuntime;

  before(async () => {
    // An empty local runtime answers the Machines API for the instances route.
    const dataDir = tempDataDir();
    runtime = await startLocalRuntime({ dataDir, machinesPort: 0, routerPort: 0 });
    // The api shares the runtime's data directory, as under `npm start`: that is where the Machines API token is.
    server = await startTestServer({ config: { dataDir, machinesPort: Number(new URL(runtime.machinesUrl).port) } });
    const rows = (await db()
      .select('tablename')
      .from('pg_tables')
      .where({ schemaname: 'public' })
      .whereNotIn('tablename', ['knex_migrations', 'knex_migrations_lock'])) as { tablename: string }[];
    tables = rows.map((r) => r.tablename).sort();
  });
  after(async () => {
    await server.close();
    await runtime.close();
  });
  beforeEach(async () => {
    // Each case starts from an empty database, so Fly starts empty too: a Fly app (and its
    // certificates) left by the previous case belongs to an app that no longer exists.
    const fly = runtime.runtime.store.state;
    for (const name of Object.keys(fly.apps)) delete fly.apps[name];
    for (const id of Object.keys(fly.machines)) delete fly.machines[id];
    world = await buildWorld();
  });

  async function clientFor(caller: Caller): Promise<Client> {
    if (caller === 'nobody') return new Client(server.url);
    if (!caller.endsWith('-token')) return signedIn(server.url, LOGIN[caller as Person]);
    // Made through the API, then used alone: no cookie, so no CSRF header either.
    const session = await signedIn(server.url, LOGIN.admin);
    const created = await session.post<{ token: string; scope: string }>('/api/tokens', { name: 'automation', scope: caller.replace('-token', '') });
    assert.equal(created.status, 201);
    assert.equal(created.body.scope, caller.replace('-token', ''));
    return new Client(server.url).withToken(created.body.token);
  }

  it('has a row for every /api route the app serves, and none for a route it does not', () => {
    const served = new Set(listRoutes(server.app).filter((r) => r.split(' ')[1].startsWith('/api/')));
    const tabled = new Set(TABLE.map((r) => r.route));
    assert.equal(tabled.size, TABLE.length, 'a route appears twice in the table');
    const missing = [...served].filter((r) => !tabled.has(r));
    const extra = [...tabled].filter((r) => !served.has(r));
    assert.deepEqual(
      { missing, extra },
      { missing: [], extra: [] },
      `routes missing from the table: ${missing.join(', ') || 'none'}; rows for routes not served: ${extra.join(', ') || 'none'}`,
    );
  });

  for (const row of TABLE) {
    const [method, pattern] = row.route.split(' ');
    describe(row.route, () => {
      for (const caller of CALLERS) {
        const who: Who = caller.endsWith('-token') ? 'admin' : (caller as Who);
        const expected = expectedFor(row, caller);
        it(`${caller} → ${expected}`, async () => {
          await row.prepare?.(world);
          const client = await clientFor(caller);
          const { path, body } = row.call(world, who);
          assert.match(path.split('?')[0], patternOf(pattern), `the row for ${row.route} calls ${path}`);
          const before = await snapshot();
          const res = await client.request(method, path, body);
          assert.equal(res.status, expected, `${caller} ${method} ${path}: ${JSON.stringify(res.body)}`);
          const changed = changedTables(before, await snapshot());
          if (expected >= 400) {
            assert.equal((res.body as { error: string }).error, ERROR_CODE[expected]);
            if (caller.endsWith('-token') && row.needs === 'session')
              assert.match((res.body as { message: string }).message, /^API tokens cannot create, list or revoke API tokens; .*dashboard/);
            assert.deepEqual(changed, [], 'a refused call wrote nothing');
            return;
          }
          if (method === 'GET') assert.deepEqual(changed, [], 'a read wrote nothing');
          else assert.notDeepEqual(changed, [], 'an allowed write changed something');
          row.check?.(res, world, who);
        });
      }
    });
  }
});

describe('authorization edges', () => {
  let server: TestServer;
  let world: World;

  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
  });
  beforeEach(async () => {
    world = await buildWorld();
  });

  const roleOf = async (login: string) => {
    const row = await TeamMember.query(db()).joinRelated('user').where({ teamId: world.team.id, 'user.login': login }).first();
    return row?.role;
  };

  it("an admin can neither change an owner's role, nor make an owner, nor invite one", async () => {
    const adam = await signedIn(server.url, LOGIN.admin);
    const demote = await adam.patch('/api/teams/acme/members/olive', { role: 'member' });
    assert.equal(demote.status, 403, JSON.stringify(demote.body));
    assert.equal(await roleOf('olive'), 'owner');
    const promote = await adam.patch('/api/teams/acme/members/tara', { role: 'owner' });
    assert.equal(promote.status, 403, JSON.stringify(promote.body));
    assert.equal(await roleOf('tara'), 'member');
    const remove = await adam.delete('/api/teams/acme/members/olive');
    assert.equal(remove.status, 403, JSON.stringify(remove.body));
    assert.equal(await roleOf('olive'), 'owner');
    const invited = await adam.post('/api/teams/acme/invitations', { login: 'ivy', role: 'owner' });
    assert.equal(invited.status, 403, JSON.stringify(invited.body));
    const list = await adam.get('/api/teams/acme/invitations');
    assert.deepEqual(list.body.items.map((i: Named) => i.login).sort(), ['ivan', 'otto']);
  });

  it('an owner can make another owner, and then step down', async () => {
    const olive = await signedIn(server.url, LOGIN.owner);
    assert.equal((await olive.patch('/api/teams/acme/members/tara', { role: 'owner' })).status, 200);
    assert.equal(await roleOf('tara'), 'owner');
    assert.equal((await olive.patch('/api/teams/acme/members/olive', { role: 'admin' })).status, 200);
    assert.equal(await roleOf('olive'), 'admin');
  });

  it('the last owner can be neither demoted nor removed', async () => {
    const olive = await signedIn(server.url, LOGIN.owner);
    const demote = await olive.patch('/api/teams/acme/members/olive', { role: 'admin' });
    assert.equal(demote.status, 409);
    assert.equal(demote.body.error, 'last_owner');
    const leave = await olive.delete('/api/teams/acme/members/olive');
    assert.equal(leave.status, 409);
    assert.equal(leave.body.error, 'last_owner');
    assert.equal(await roleOf('olive'), 'owner');
  });

  it('a member may leave the team, and then sees it no more', async () => {
    const mia = await signedIn(server.url, LOGIN.member);
    assert.equal((await mia.delete('/api/teams/acme/members/mia')).status, 204);
    assert.equal(await roleOf('mia'), undefined);
    assert.equal((await mia.get('/api/teams/acme')).status, 404);
    assert.equal((await mia.get('/api/apps/acme-web')).status, 404);
  });

  it('reveals env var values to admins and owners only, and audit-logs each reveal', async () => {
    for (const who of ['owner', 'admin'] as const) {
      const res = await (await signedIn(server.url, LOGIN[who])).get('/api/apps/acme-web/env?reveal=1');
      assert.equal(res.status, 200);
      assert.deepEqual(
        res.body.items.map((v: { name: string; value: string }) => [v.name, v.value]),
        [['SECRET_KEY', 'hunter2']],
      );
    }
    const mia = await (await signedIn(server.url, LOGIN.member)).get('/api/apps/acme-web/env?reveal=1');
    assert.equal(mia.status, 403);
    assert.equal(mia.body.error, 'forbidden');
    const reveals = await AuditEvent.query(db()).where({ teamId: world.team.id, action: 'env.revealed' }).orderBy('id');
    assert.deepEqual(
      reveals.map((e) => e.actorLogin),
      ['olive', 'adam'],
    );
  });

  it('refuses to delete a team that still has apps', async () => {
    const res = await (await signedIn(server.url, LOGIN.owner)).delete('/api/teams/acme');
    assert.equal(res.status, 409);
    assert.equal(res.body.error, 'team_has_apps');
    assert.equal((await (await signedIn(server.url, LOGIN.owner)).get('/api/teams/acme')).status, 200);
    assert.equal(await App.query(db()).where({ teamId: world.team.id }).resultSize(), 1);
  });

  it("an invitation of another team cannot be revoked through one's own team", async () => {
    // otto owns beta; acme's invitation to ivan is not beta's.
    const otto = await signedIn(server.url, LOGIN.other);
    const res = await otto.delete(`/api/teams/beta/invitations/${world.teamInvitationId}`);
    assert.equal(res.status, 404);
    const olive = await signedIn(server.url, LOGIN.owner);
    assert.deepEqual((await olive.get('/api/teams/acme/invitations')).body.items.map((i: Named) => i.login).sort(), ['ivan', 'otto']);
  });

  it('a pending invitation gives no access to the team', async () => {
    const otto = await signedIn(server.url, LOGIN.other);
    assert.equal((await otto.get('/api/teams/acme')).status, 404);
    const accepted = await otto.post(`/api/invitations/${world.invitationTo.other}/accept`);
    assert.equal(accepted.status, 200);
    assert.equal((await otto.get('/api/teams/acme')).body.role, 'member');
  });

  describe('API tokens', () => {
    it('work on reads and writes without a cookie or CSRF header, and stop working once revoked', async () => {
      const adam = await signedIn(server.url, LOGIN.admin);
      const created = await adam.post('/api/tokens', { name: 'ci', scope: 'admin' });
      const bearer = new Client(server.url).withToken(created.body.token);
      assert.equal(bearer.cookies.size, 0);
      const write = await bearer.patch('/api/apps/acme-web', { name: 'Via token' });
      assert.equal(write.status, 200, JSON.stringify(write.body));
      const audit = await AuditEvent.query(db()).where({ teamId: world.team.id, action: 'app.updated' }).first();
      assert.deepEqual(audit?.data, { slug: 'acme-web', fields: ['name'], via: 'api_token' });
      assert.equal((await adam.delete(`/api/tokens/${created.body.id}`)).status, 204);
      const after = await bearer.get('/api/me');
      assert.equal(after.status, 401);
      assert.equal(after.body.error, 'unauthenticated');
    });

    it("default to the deploy scope, the least `rhone up` needs, and the list shows each token's scope", async () => {
      const adam = await signedIn(server.url, LOGIN.admin);
      const created = await adam.post('/api/tokens', { name: 'laptop' });
      assert.equal(created.status, 201);
      assert.equal(created.body.scope, 'deploy');
      const listed = await adam.get('/api/tokens');
      assert.deepEqual(
        listed.body.items.map((t: { name: string; scope: string }) => [t.name, t.scope]),
        [
          ['laptop', 'deploy'],
          ['admin laptop', 'deploy'],
        ],
      );
      const bad = await adam.post('/api/tokens', { name: 'x', scope: 'root' });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.details[0].field, 'body.scope');
    });

    it('only an admin-scoped token may reveal env values, though revealing is a GET', async () => {
      const adam = await signedIn(server.url, LOGIN.admin);
      for (const scope of SCOPES) {
        const created = await adam.post('/api/tokens', { name: scope, scope });
        const res = await new Client(server.url).withToken(created.body.token).get('/api/apps/acme-web/env?reveal=1');
        assert.equal(res.status, scope === 'admin' ? 200 : 403, `${scope}: ${JSON.stringify(res.body)}`);
        if (scope !== 'admin')
          assert.match(
            res.body.message,
            new RegExp(`^This API token's scope \\(${scope}\\) does not allow revealing env var values; it needs the admin scope\\.`),
          );
      }
      const reveals = await AuditEvent.query(db()).where({ teamId: world.team.id, action: 'env.revealed' });
      assert.equal(reveals.length, 1);
    });

    it('cannot mint a token that would outlive its own revocation', async () => {
      const adam = await signedIn(server.url, LOGIN.admin);
      const parent = await adam.post('/api/tokens', { name: 'parent', scope: 'admin' });
      const bearer = new Client(server.url).withToken(parent.body.token);
      const child = await bearer.post('/api/tokens', { name: 'child', scope: 'admin' });
      assert.equal(child.status, 403);
      assert.equal(child.body.error, 'forbidden');
      assert.match(child.body.message, /sign in to the dashboard/);
      assert.deepEqual(
        (await adam.get('/api/tokens')).body.items.map((t: { name: string }) => t.name),
        ['parent', 'admin laptop'],
      );
    });

    it('a made-up or malformed token is a 401, even alongside a valid session cookie', async () => {
      const forged = await new Client(server.url).withToken('rhone_notarealtoken').get('/api/me');
      assert.equal(forged.status, 401);
      const olive = await signedIn(server.url, LOGIN.owner);
      const mixed = await olive.request('GET', '/api/me', undefined, { authorization: 'Basic abc' });
      assert.equal(mixed.status, 401);
    });
  });

  describe('CSRF', () => {
    it('a cookie-authenticated write without X-CSRF-Token is a 403 csrf_failed and writes nothing', async () => {
      const olive = await signedIn(server.url, LOGIN.owner);
      const cookie = [...olive.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
      assert.match(cookie, /rhone_session=/);
      const res = await fetch(`${server.url}/api/teams/acme/apps`, {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(APP_BODY),
      });
      assert.equal(res.status, 403);
      assert.equal(((await res.json()) as { error: string }).error, 'csrf_failed');
      assert.equal(await App.query(db()).resultSize(), 1);
      const list = await olive.get('/api/teams/acme/apps');
      assert.equal(list.status, 200, 'reads need no CSRF header');
      assert.deepEqual(
        list.body.items.map((a: { slug: string }) => a.slug),
        ['acme-web'],
      );
    });

    it('a wrong X-CSRF-Token is refused the same way', async () => {
      const olive = await signedIn(server.url, LOGIN.owner);
      const res = await olive.request('DELETE', '/api/apps/acme-web', undefined, { 'x-csrf-token': 'not-the-cookie' });
      assert.equal(res.status, 403);
      assert.equal(res.body.error, 'csrf_failed');
      assert.equal(await App.query(db()).where({ slug: 'acme-web' }).resultSize(), 1);
      // With the header, the same session may write.
      assert.equal((await olive.delete('/api/apps/acme-web')).status, 204);
    });
  });
});
