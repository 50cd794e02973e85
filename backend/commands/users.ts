import type { Knex } from 'knex';
import { Team, TeamMember, User } from '../models/index.ts';
import { RESERVED_SLUGS } from '../lib/slugs.ts';
import { recordAudit } from './audit.ts';
import { ConflictError } from '../lib/errors.ts';
import { tag } from '../lib/cache.ts';
import { invalidateOnCommit } from '../lib/transaction.ts';
import { transaction } from '../lib/transaction.ts';

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
 * A GitHub login names one account only at a time: accounts get renamed and their old login taken by
 * someone else. A row still holding `login` under another GitHub id is stale, so it is renamed aside
 * (to a name GitHub never issues; its owner's next sign-in, matched by id, restores their login) and
 * never signed into. A holder with no GitHub id at all (made by local mode's sign-in by login) is
 * returned to be claimed when `claim` is set, else renamed aside too.
 */
async function moveAsideStaleLogin(trx: Knex.Transaction, login: string, githubId: number, claim: boolean): Promise<User | undefined> {
  const holder = await User.query(trx).findOne({ login }).forUpdate();
  if (!holder || Number(holder.githubId) === githubId) return undefined;
  if (holder.githubId === null && claim) return holder;
  await User.query(trx)
    .patch({ login: `${holder.login}~${holder.githubId ?? holder.id.slice(0, 8)}` })
    .where({ id: holder.id });
  // Their cached sessions must not keep the login they no longer hold (invitations follow logins).
  await invalidateOnCommit(trx, [tag.user(holder.id)]);
  return undefined;
}

/**
 * Creates the user on first sign-in (with a personal team they own) or refreshes their profile.
 * GitHub users are matched by their immutable id, so a renamed login keeps its account, and a login
 * someone else held before never leads into that other account.
 */
export async function signIn(knex: Knex, profile: Profile): Promise<{ user: User; created: boolean }> {
  return transaction(knex, async (trx) => {
    const refresh = async (user: User) => {
      const patch: Partial<User> = { login: profile.login };
      if (profile.githubId) patch.githubId = profile.githubId;
      if (profile.name !== undefined) patch.name = profile.name;
      if (profile.email !== undefined) patch.email = profile.email;
      if (profile.avatarUrl !== undefined) patch.avatarUrl = profile.avatarUrl;
      const refreshed = await user.$query(trx).patchAndFetch(patch);
      await invalidateOnCommit(trx, [tag.user(user.id)]);
      return { user: refreshed, created: false };
    };
    const existing = profile.githubId
      ? await User.query(trx).findOne({ githubId: profile.githubId }).forUpdate()
      : await User.query(trx).findOne({ login: profile.login }).forUpdate();
    if (existing) {
      if (profile.githubId && existing.login.toLowerCase() !== profile.login.toLowerCase())
        await moveAsideStaleLogin(trx, profile.login, profile.githubId, false);
      return refresh(existing);
    }
    if (profile.githubId) {
      const unclaimed = await moveAsideStaleLogin(trx, profile.login, profile.githubId, true);
      if (unclaimed) return refresh(unclaimed);
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
      const winner = await User.query(trx).findOne({ login: profile.login }).throwIfNotFound();
      if (profile.githubId && Number(winner.githubId) !== profile.githubId) {
        throw new ConflictError('login_taken', `Another sign-in is claiming the login ${profile.login} right now; try again.`);
      }
      return { user: winner, created: false };
    }
    const user = await User.query(trx).findById(inserted[0].id).throwIfNotFound();
    const team = await insertPersonalTeam(trx, user);
    await TeamMember.query(trx).insert({ teamId: team.id, userId: user.id, role: 'owner' });
    await recordAudit(trx, {
      teamId: team.id,
      actor: { user, via: 'session' },
      action: 'team.created',
      subjectType: 'team',
      subjectId: team.id,
      data: { slug: team.slug, personal: true },
    });
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
