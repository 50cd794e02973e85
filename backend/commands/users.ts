import type { Knex } from 'knex';
import { Team, TeamMember, User } from '../models/index.ts';
import { RESERVED_SLUGS } from '../lib/slugs.ts';
import { recordAudit } from './audit.ts';

export interface Profile {
  login: string;
  githubId?: number;
  name?: string | null;
  email?: string | null;
  avatarUrl?: string | null;
}

/** A free team slug derived from the login: "ada", then "ada-2", "ada-3"... */
async function insertPersonalTeam(trx: Knex.Transaction, user: User): Promise<Team> {
  const base = user.login.toLowerCase().padEnd(2, '0');
  for (let n = 1; n < 1000; n++) {
    const slug = n === 1 && !RESERVED_SLUGS.has(base) ? base : `${base.slice(0, 34)}-${n}`;
    const inserted = (await trx('teams')
      .insert({ slug, name: user.name || user.login, personal: true })
      .onConflict('slug')
      .ignore()
      .returning('id')) as { id: string }[];
    if (inserted.length > 0) return Team.query(trx).findById(inserted[0].id).throwIfNotFound();
  }
  throw new Error(`no free team slug for ${user.login}`);
}

/**
 * Creates the user on first sign-in (with a personal team they own) or refreshes their profile.
 * GitHub users are matched by their immutable id, so a renamed login keeps its account.
 */
export async function signIn(knex: Knex, profile: Profile): Promise<{ user: User; created: boolean }> {
  return knex.transaction(async (trx) => {
    const existing = profile.githubId
      ? await User.query(trx).findOne({ githubId: profile.githubId }).forUpdate()
      : await User.query(trx).findOne({ login: profile.login }).forUpdate();
    if (existing) {
      const patch: Partial<User> = { login: profile.login };
      if (profile.name !== undefined) patch.name = profile.name;
      if (profile.email !== undefined) patch.email = profile.email;
      if (profile.avatarUrl !== undefined) patch.avatarUrl = profile.avatarUrl;
      const user = await existing.$query(trx).patchAndFetch(patch);
      return { user, created: false };
    }
    const inserted = (await trx('users')
      .insert({
        login: profile.login,
        githubId: profile.githubId ?? null,
        name: profile.name ?? null,
        email: profile.email ?? null,
        avatarUrl: profile.avatarUrl ?? null,
      })
      .onConflict('login')
      .ignore()
      .returning('id')) as { id: string }[];
    if (inserted.length === 0) {
      // A concurrent first sign-in won the race; that one created the personal team.
      return { user: await User.query(trx).findOne({ login: profile.login }).throwIfNotFound(), created: false };
    }
    const user = await User.query(trx).findById(inserted[0].id).throwIfNotFound();
    const team = await insertPersonalTeam(trx, user);
    await TeamMember.query(trx).insert({ teamId: team.id, userId: user.id, role: 'owner' });
    await recordAudit(trx, { teamId: team.id, actor: { user, via: 'session' }, action: 'team.created', subjectType: 'team', subjectId: team.id, data: { slug: team.slug, personal: true } });
    return { user, created: true };
  });
}

export async function teamsOf(userId: string) {
  return Team.query()
    .select('teams.slug', 'teams.name', 'teams.plan', 'teams.personal', 'team_members.role')
    .join('team_members', 'team_members.team_id', 'teams.id')
    .where('team_members.user_id', userId)
    .orderBy('teams.slug') as unknown as Promise<Array<Pick<Team, 'slug' | 'name' | 'plan' | 'personal'> & { role: string }>>;
}
