import type { Knex } from 'knex';
import { Team, TeamMember, User, type Role } from '../models/index.ts';
import { ConflictError, ForbiddenError, NotFoundError } from '../lib/errors.ts';
import { canManageRole } from '../policies/index.ts';
import type { Actor } from '../middleware/auth.ts';
import { recordAudit } from './audit.ts';
import { transaction } from '../lib/transaction.ts';

export async function listMembers(teamId: string) {
  return TeamMember.query().where({ teamId }).withGraphFetched('user').orderBy('createdAt');
}

async function findMember(trx: Knex.Transaction, team: Team, login: string): Promise<TeamMember> {
  const member = await TeamMember.query(trx)
    .join('users', 'users.id', 'team_members.user_id')
    .where({ 'team_members.team_id': team.id })
    .whereRaw('users.login = ?::citext', [login])
    .select('team_members.*')
    .withGraphFetched('user')
    .forUpdate()
    .first();
  if (!member) throw new NotFoundError(`Member "${login}" of team "${team.slug}"`);
  return member;
}

/** Locks the team's owner rows so two requests cannot both remove "the other" owner. */
async function ownerCount(trx: Knex.Transaction, teamId: string): Promise<number> {
  const owners = await TeamMember.query(trx).where({ teamId, role: 'owner' }).forUpdate();
  return owners.length;
}

export async function changeRole(knex: Knex, actor: Actor, actorRole: Role, team: Team, login: string, role: Role): Promise<TeamMember> {
  return transaction(knex, async (trx) => {
    const member = await findMember(trx, team, login);
    if (!canManageRole(actorRole, member.role) || !canManageRole(actorRole, role)) {
      throw new ForbiddenError("Only an owner can make someone an owner or change an owner's role.");
    }
    if (member.role === role) return member;
    if (member.role === 'owner' && (await ownerCount(trx, team.id)) <= 1) {
      throw new ConflictError('last_owner', `${login} is the last owner of "${team.slug}"; make someone else an owner first.`);
    }
    await TeamMember.query(trx).patch({ role }).where({ teamId: team.id, userId: member.userId });
    await recordAudit(trx, {
      teamId: team.id,
      actor,
      action: 'member.role_changed',
      subjectType: 'user',
      subjectId: member.userId,
      data: { login: member.user?.login, from: member.role, to: role },
    });
    return Object.assign(member, { role });
  });
}

/** Admins remove members and admins, owners anyone; anyone may leave. The last owner stays. */
export async function removeMember(knex: Knex, actor: Actor, actorRole: Role, team: Team, login: string): Promise<void> {
  await transaction(knex, async (trx) => {
    const member = await findMember(trx, team, login);
    const leaving = member.userId === actor.user.id;
    if (!leaving && !canManageRole(actorRole, member.role)) {
      throw new ForbiddenError('Only an owner can remove an owner.');
    }
    if (!leaving && actorRole === 'member') throw new ForbiddenError('Your role (member) may not remove members; ask an admin or owner of the team.');
    if (member.role === 'owner' && (await ownerCount(trx, team.id)) <= 1) {
      throw new ConflictError('last_owner', `${login} is the last owner of "${team.slug}"; make someone else an owner first, or delete the team.`);
    }
    await TeamMember.query(trx).delete().where({ teamId: team.id, userId: member.userId });
    await recordAudit(trx, {
      teamId: team.id,
      actor,
      action: leaving ? 'member.left' : 'member.removed',
      subjectType: 'user',
      subjectId: member.userId,
      data: { login: member.user?.login, role: member.role },
    });
  });
}

export async function userByLogin(login: string): Promise<User | undefined> {
  return User.query().whereRaw('login = ?::citext', [login]).first();
}
