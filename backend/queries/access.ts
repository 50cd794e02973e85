// Loads a team or an app together with the caller's role in its team, in one query. Not a
// member means not found: other teams' resources are invisible.
// Answers are cached per user (lib/cache.ts), tagged with the team and the user: every change to
// a team, its members or its apps records an audit event, which invalidates the team's tag. A
// "not found" is never cached, so joining a team takes effect at once.
import { App, Team, TeamMember, type Role } from '../models/index.ts';
import { NotFoundError } from '../lib/errors.ts';
import { tag } from '../lib/cache.ts';
import type { Actor } from '../middleware/auth.ts';

type Row = Readonly<Record<string, unknown>>;

/**
 * A row's own fields, frozen (its JSON columns too), to share between requests: each request gets
 * its own model made from it, and nothing can change the cached copy.
 */
function snapshot(model: object): Row {
  const row: Record<string, unknown> = { ...model };
  for (const value of Object.values(row)) {
    if (value && typeof value === 'object' && !(value instanceof Date)) Object.freeze(value);
  }
  return Object.freeze(row);
}

export interface TeamAccess {
  team: Team;
  role: Role;
}

export interface AppAccess extends TeamAccess {
  app: App;
}

interface TeamHit {
  team: Row;
  role: Role;
}

interface AppHit extends TeamHit {
  app: Row;
}

export async function teamAccess(actor: Actor, slug: string): Promise<TeamAccess> {
  const cache = actor.caches?.cache<TeamHit>('team-access');
  if (!cache) return loadTeamAccess(actor, slug);
  const hit = await cache.load(`${actor.user.id}:${slug}`, async () => {
    const { team, role } = await loadTeamAccess(actor, slug);
    return { value: { team: snapshot(team), role }, tags: [tag.team(team.id), tag.user(actor.user.id)] };
  });
  return { team: Object.assign(new Team(), hit.team), role: hit.role };
}

async function loadTeamAccess(actor: Actor, slug: string): Promise<TeamAccess> {
  const team = await Team.query()
    .select('teams.*', 'team_members.role as memberRole')
    .join('team_members', 'team_members.team_id', 'teams.id')
    .where({ 'teams.slug': slug, 'team_members.user_id': actor.user.id })
    .first();
  if (!team) throw new NotFoundError(`Team "${slug}"`);
  const { memberRole } = team as Team & { memberRole: Role };
  delete (team as Partial<{ memberRole: Role }>).memberRole;
  return { team, role: memberRole };
}

export async function appAccess(actor: Actor, slug: string): Promise<AppAccess> {
  const cache = actor.caches?.cache<AppHit>('app-access');
  if (!cache) return loadAppAccess(actor, slug);
  const hit = await cache.load(`${actor.user.id}:${slug}`, async () => {
    const { app, team, role } = await loadAppAccess(actor, slug);
    const { team: _joined, ...appFields } = app;
    return { value: { app: snapshot(appFields), team: snapshot(team), role }, tags: [tag.team(team.id), tag.user(actor.user.id)] };
  });
  const team = Object.assign(new Team(), hit.team);
  return { app: Object.assign(new App(), hit.app, { team }), team, role: hit.role };
}

async function loadAppAccess(actor: Actor, slug: string): Promise<AppAccess> {
  const app = await App.query()
    .withGraphJoined('team')
    .join('team_members', 'team_members.team_id', 'apps.team_id')
    // An explicit select replaces the root's columns in a joined graph, so name them too.
    .select('apps.*', 'team_members.role as memberRole')
    .where({ 'apps.slug': slug, 'team_members.user_id': actor.user.id })
    .first();
  if (!app?.team) throw new NotFoundError(`App "${slug}"`);
  const { memberRole } = app as App & { memberRole: Role };
  delete (app as Partial<{ memberRole: Role }>).memberRole;
  return { app, team: app.team, role: memberRole };
}

export async function membership(teamId: string, userId: string): Promise<TeamMember | undefined> {
  return TeamMember.query().findOne({ teamId, userId });
}
