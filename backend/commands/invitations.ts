import type { Knex } from 'knex';
import { Invitation, Team, TeamMember, type Role } from '../models/index.ts';
import { ConflictError, ForbiddenError, NotFoundError } from '../lib/errors.ts';
import { canManageRole } from '../policies/index.ts';
import type { Actor } from '../middleware/auth.ts';
import { recordAudit } from './audit.ts';
import { transaction } from '../lib/transaction.ts';
import { assertMemberSeat } from '../billing/limits.ts';

export const INVITATION_TTL_MS = 7 * 24 * 60 * 60 * 1000;

export async function invite(knex: Knex, actor: Actor, actorRole: Role, team: Team, login: string, role: Role): Promise<Invitation> {
  if (!canManageRole(actorRole, role)) throw new ForbiddenError('Only an owner can invite another owner.');
  return transaction(knex, async (trx) => {
    const already = await TeamMember.query(trx)
      .join('users', 'users.id', 'team_members.user_id')
      .where('team_members.team_id', team.id)
      .whereRaw('users.login = ?::citext', [login])
      .first();
    if (already) throw new ConflictError('already_member', `${login} is already a member of "${team.slug}".`);
    // An expired invitation to the same login is replaced by the new one.
    await Invitation.query(trx).delete().where({ teamId: team.id }).whereRaw('login = ?::citext', [login]).where('expiresAt', '<', new Date());
    // Open invitations hold seats: a plan's member limit cannot be passed by inviting many at once.
    await assertMemberSeat(trx, team, true);
    const rows = (await trx('invitations')
      .insert({ teamId: team.id, login, role, invitedBy: actor.user.id, expiresAt: new Date(Date.now() + INVITATION_TTL_MS) })
      .onConflict(['team_id', 'login'])
      .ignore()
      .returning('id')) as { id: string }[];
    if (rows.length === 0) throw new ConflictError('already_invited', `${login} already has an open invitation to "${team.slug}".`);
    await recordAudit(trx, { teamId: team.id, actor, action: 'member.invited', subjectType: 'invitation', subjectId: rows[0].id, data: { login, role } });
    return Invitation.query(trx).findById(rows[0].id).withGraphFetched('[team, inviter]').throwIfNotFound();
  });
}

export async function listTeamInvitations(teamId: string) {
  return Invitation.query().where({ teamId }).where('expiresAt', '>', new Date()).withGraphFetched('[team, inviter]').orderBy('createdAt');
}

export async function revokeInvitation(knex: Knex, actor: Actor, team: Team, id: string): Promise<void> {
  await transaction(knex, async (trx) => {
    const invitation = await Invitation.query(trx).findOne({ id, teamId: team.id });
    if (!invitation) throw new NotFoundError('Invitation');
    await Invitation.query(trx).deleteById(id);
    await recordAudit(trx, {
      teamId: team.id,
      actor,
      action: 'invitation.revoked',
      subjectType: 'invitation',
      subjectId: id,
      data: { login: invitation.login },
    });
  });
}

export async function myInvitations(actor: Actor) {
  return Invitation.query()
    .whereRaw('login = ?::citext', [actor.user.login])
    .where('expiresAt', '>', new Date())
    .withGraphFetched('[team, inviter]')
    .orderBy('createdAt');
}

async function openInvitationFor(trx: Knex.Transaction, actor: Actor, id: string): Promise<Invitation> {
  const invitation = await Invitation.query(trx)
    .findById(id)
    .whereRaw('login = ?::citext', [actor.user.login])
    .where('expiresAt', '>', new Date())
    .withGraphFetched('team')
    .forUpdate();
  if (!invitation?.team) throw new NotFoundError('Invitation');
  return invitation;
}

export async function acceptInvitation(knex: Knex, actor: Actor, id: string): Promise<{ team: Team; role: Role }> {
  return transaction(knex, async (trx) => {
    const invitation = await openInvitationFor(trx, actor, id);
    // The plan may have changed since the invitation was sent.
    const isMember = await trx('teamMembers').where({ teamId: invitation.teamId, userId: actor.user.id }).first('userId');
    if (!isMember) await assertMemberSeat(trx, { id: invitation.teamId }, false);
    await trx('team_members').insert({ teamId: invitation.teamId, userId: actor.user.id, role: invitation.role }).onConflict(['team_id', 'user_id']).ignore();
    await Invitation.query(trx).deleteById(id);
    await recordAudit(trx, {
      teamId: invitation.teamId,
      actor,
      action: 'member.joined',
      subjectType: 'user',
      subjectId: actor.user.id,
      data: { login: actor.user.login, role: invitation.role },
    });
    return { team: invitation.team!, role: invitation.role };
  });
}

export async function declineInvitation(knex: Knex, actor: Actor, id: string): Promise<void> {
  await transaction(knex, async (trx) => {
    const invitation = await openInvitationFor(trx, actor, id);
    await Invitation.query(trx).deleteById(id);
    await recordAudit(trx, {
      teamId: invitation.teamId,
      actor,
      action: 'invitation.declined',
      subjectType: 'invitation',
      subjectId: id,
      data: { login: actor.user.login },
    });
  });
}
