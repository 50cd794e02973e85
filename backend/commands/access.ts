// Loads a team or an app together with the caller's role in its team, in one query. Not a
// member means not found: other teams' resources are invisible.
import { App, Team, TeamMember, type Role } from '../models/index.ts';
import { NotFoundError } from '../lib/errors.ts';
import type { Actor } from '../middleware/auth.ts';

export interface TeamAccess {
  team: Team;
  role: Role;
}

export interface AppAccess extends TeamAccess {
  app: App;
}

export async function teamAccess(actor: Actor, slug: string): Promise<TeamAccess> {
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
