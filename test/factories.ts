// Rows for tests, written through the same commands the API uses.
import { db } from '../backend/db.ts';
import { signIn } from '../backend/commands/users.ts';
import { createTeam } from '../backend/commands/teams.ts';
import { createApp } from '../backend/commands/apps.ts';
import { getConfig } from '../backend/config.ts';
import { TeamMember, type Role, type Team, type User } from '../backend/models/index.ts';
import { createApp as createAppSchema } from '../backend/routes/apps/schema.ts';

export async function makeUser(login: string): Promise<User> {
  return (await signIn(db(), { login })).user;
}

export async function makeTeam(owner: User, slug: string): Promise<Team> {
  return createTeam(db(), { user: owner, via: 'session' }, { slug, name: slug });
}

export async function addMember(team: Team, user: User, role: Role): Promise<void> {
  await TeamMember.query(db()).insert({ teamId: team.id, userId: user.id, role });
}

export async function makeApp(owner: User, team: Team, slug: string, overrides: Record<string, unknown> = {}) {
  const input = createAppSchema.body.parse({ name: slug, slug, source: { type: 'git', url: 'file:///tmp/repo.git', branch: 'main' }, ...overrides });
  return createApp(db(), getConfig(), { user: owner, via: 'session' }, team, input);
}
