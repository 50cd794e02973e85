// A deployment with its app and the caller's role in the app's team, in one query; not a member
// of that team means not found.
import { App, Deployment, Team, type Role } from '../models/index.ts';
import { NotFoundError } from '../lib/errors.ts';
import type { Actor } from '../middleware/auth.ts';

export interface DeploymentAccess {
  deployment: Deployment;
  app: App;
  team: Team;
  role: Role;
}

export async function deploymentAccess(actor: Actor, id: string): Promise<DeploymentAccess> {
  const row = await Deployment.query()
    .select('deployments.*', 'team_members.role as memberRole')
    .join('apps', 'apps.id', 'deployments.app_id')
    .join('team_members', 'team_members.team_id', 'apps.team_id')
    .where({ 'deployments.id': id, 'team_members.user_id': actor.user.id })
    .first();
  if (!row) throw new NotFoundError('Deployment');
  const { memberRole } = row as Deployment & { memberRole: Role };
  delete (row as Partial<{ memberRole: Role }>).memberRole;
  const app = await App.query().findById(row.appId).throwIfNotFound();
  const team = await Team.query().findById(app.teamId).throwIfNotFound();
  return { deployment: row, app, team, role: memberRole };
}
