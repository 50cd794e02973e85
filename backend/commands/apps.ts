import type { Knex } from 'knex';
import { App, GithubInstallation, Team, type AppSource } from '../models/index.ts';
import { ConflictError, ValidationError } from '../lib/errors.ts';
import type { Config } from '../config.ts';
import type { Actor } from '../middleware/auth.ts';
import type { CreateAppInput, UpdateAppInput } from '../routes/apps/schema.ts';
import { decodeCursor, toPage } from '../lib/pagination.ts';
import { recordAudit } from './audit.ts';
import { transaction } from '../lib/transaction.ts';

/** What the schema cannot know: which URL schemes this mode allows, and whose installation it is. */
async function checkSource(knex: Knex, config: Config, team: Team, source: AppSource): Promise<void> {
  if (source.type === 'git') {
    const protocol = new URL(source.url).protocol;
    const allowed = config.isLocal ? ['https:', 'file:'] : ['https:'];
    if (!allowed.includes(protocol)) {
      const message = config.isLocal ? 'must be an https:// or file:// URL' : 'must be an https:// URL (file:// works only in local mode)';
      throw new ValidationError(`body.source.url: ${message}`, [{ field: 'body.source.url', message }]);
    }
    return;
  }
  const installation = await GithubInstallation.query(knex)
    .findById(source.installationId)
    .where({ teamId: team.id })
    .whereNull('deletedAt');
  if (!installation) {
    const message = `is not a GitHub App installation of team "${team.slug}"; install the Rhone GitHub App first`;
    throw new ValidationError(`body.source.installationId: ${message}`, [{ field: 'body.source.installationId', message }]);
  }
}

function slugTaken(slug: string): ConflictError {
  return new ConflictError('slug_taken', `The app slug "${slug}" is taken; choose another.`, [{ field: 'body.slug', message: 'is taken' }]);
}

export async function listApps(team: Team, limit: number, cursor?: string) {
  const after = decodeCursor(cursor, 1);
  const query = App.query().where({ teamId: team.id }).orderBy('slug').limit(limit + 1);
  if (after) query.where('slug', '>', String(after[0]));
  return toPage(await query, limit, (a) => [a.slug]);
}

export async function createApp(knex: Knex, config: Config, actor: Actor, team: Team, input: CreateAppInput): Promise<App> {
  await checkSource(knex, config, team, input.source);
  return transaction(knex, async (trx) => {
    const rows = (await trx('apps')
      .insert({
        ...input,
        source: JSON.stringify(input.source),
        buildCommand: input.buildCommand ?? null,
        startCommand: input.startCommand ?? null,
        teamId: team.id,
        createdBy: actor.user.id,
      })
      .onConflict('slug')
      .ignore()
      .returning('id')) as { id: string }[];
    if (rows.length === 0) throw slugTaken(input.slug);
    await recordAudit(trx, { teamId: team.id, actor, action: 'app.created', subjectType: 'app', subjectId: rows[0].id, data: { slug: input.slug } });
    return App.query(trx).findById(rows[0].id).throwIfNotFound();
  });
}

export async function updateApp(knex: Knex, config: Config, actor: Actor, team: Team, app: App, input: UpdateAppInput): Promise<App> {
  if (input.source) await checkSource(knex, config, team, input.source);
  return transaction(knex, async (trx) => {
    const updated = await App.query(trx).patchAndFetchById(app.id, input as Partial<App>);
    await recordAudit(trx, { teamId: team.id, actor, action: 'app.updated', subjectType: 'app', subjectId: app.id, data: { slug: app.slug, fields: Object.keys(input) } });
    return updated;
  });
}

export async function deleteApp(knex: Knex, actor: Actor, team: Team, app: App): Promise<void> {
  await transaction(knex, async (trx) => {
    await App.query(trx).deleteById(app.id);
    await recordAudit(trx, { teamId: team.id, actor, action: 'app.deleted', subjectType: 'app', subjectId: app.id, data: { slug: app.slug, name: app.name } });
  });
}
