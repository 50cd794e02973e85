import type { Knex } from 'knex';
import objection from 'objection';
import { App, Team, TeamMember } from '../models/index.ts';
import { ConflictError } from '../lib/errors.ts';
import type { Actor } from '../middleware/auth.ts';
import { recordAudit } from './audit.ts';
import { invalidate, tag } from '../lib/cache.ts';
import { transaction } from '../lib/transaction.ts';

export async function createTeam(knex: Knex, actor: Actor, input: { slug: string; name: string }): Promise<Team> {
  return transaction(knex, async (trx) => {
    const inserted = (await trx('teams').insert({ slug: input.slug, name: input.name }).onConflict('slug').ignore().returning('id')) as { id: string }[];
    if (inserted.length === 0) {
      throw new ConflictError('slug_taken', `The team slug "${input.slug}" is taken; choose another.`, [{ field: 'body.slug', message: 'is taken' }]);
    }
    const team = await Team.query(trx).findById(inserted[0].id).throwIfNotFound();
    await TeamMember.query(trx).insert({ teamId: team.id, userId: actor.user.id, role: 'owner' });
    await recordAudit(trx, { teamId: team.id, actor, action: 'team.created', subjectType: 'team', subjectId: team.id, data: { slug: team.slug } });
    return team;
  });
}

export async function renameTeam(knex: Knex, actor: Actor, team: Team, name: string): Promise<Team> {
  return transaction(knex, async (trx) => {
    const updated = await team.$query(trx).patchAndFetch({ name });
    await recordAudit(trx, { teamId: team.id, actor, action: 'team.renamed', subjectType: 'team', subjectId: team.id, data: { from: team.name, to: name } });
    return updated;
  });
}

export async function deleteTeam(knex: Knex, team: Team): Promise<void> {
  const apps = await App.query(knex).where({ teamId: team.id }).resultSize();
  if (apps > 0) {
    throw new ConflictError('team_has_apps', `Team "${team.slug}" still has ${apps} app${apps === 1 ? '' : 's'}; delete them first.`);
  }
  try {
    await Team.query(knex).deleteById(team.id);
  } catch (err) {
    // An app created between the count and the delete: apps.team_id restricts the delete.
    if (err instanceof objection.ForeignKeyViolationError) {
      throw new ConflictError('team_has_apps', `Team "${team.slug}" still has apps; delete them first.`);
    }
    throw err;
  }
  // No audit event survives the team (they cascade), so its caches are told here.
  await invalidate([tag.team(team.id)]);
}
