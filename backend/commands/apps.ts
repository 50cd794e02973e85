import type { Knex } from 'knex';
import { App, Deployment, GithubInstallation, GithubInstallationRepository, Team, type AppSource } from '../models/index.ts';
import { newFlyAppName } from '../providers/fly/names.ts';
import { enqueue, type QueueContext } from '../../jobs/queues.ts';
import { IN_FLIGHT_STATUSES } from '../deployments/pipeline.ts';
import { ConflictError, ValidationError } from '../lib/errors.ts';
import type { Config } from '../config.ts';
import type { Actor } from '../middleware/auth.ts';
import type { CreateAppInput, UpdateAppInput } from '../routes/apps/schema.ts';
import { decodeCursor, toPage } from '../lib/pagination.ts';
import { recordAudit } from './audit.ts';
import { transaction } from '../lib/transaction.ts';
import { assertRegionAllowed } from '../billing/limits.ts';
import { assertNoCredentials, checkPublicRemote, UnsafeRemoteError } from '../source/remote-guard.ts';

function invalidSource(field: string, message: string): ValidationError {
  return new ValidationError(`body.source.${field}: ${message}`, [{ field: `body.source.${field}`, message }]);
}

/**
 * What the schema cannot know: which URL schemes this mode allows, whose installation it is, and
 * whether it grants the repository. Returns the source as stored: a GitHub repository under
 * GitHub's own spelling of its name, with its id (which survives renames).
 */
async function checkSource(knex: Knex, config: Config, team: Team, source: AppSource): Promise<AppSource> {
  if (source.type === 'git') {
    const protocol = new URL(source.url).protocol;
    const allowed = config.isLocal ? ['https:', 'file:'] : ['https:'];
    if (!allowed.includes(protocol)) {
      const message = config.isLocal ? 'must be an https:// or file:// URL' : 'must be an https:// URL (file:// works only in local mode)';
      throw invalidSource('url', message);
    }
    // A token in the URL would be stored and shown to every member; in production the host must
    // be public (remote-guard.ts). Local mode is the developer's own machine: localhost is fine.
    try {
      assertNoCredentials(source.url);
      if (!config.isLocal) await checkPublicRemote(source.url);
    } catch (err) {
      if (err instanceof UnsafeRemoteError) throw invalidSource('url', err.message);
      throw err;
    }
    return source;
  }
  const installation = await GithubInstallation.query(knex).findById(source.installationId).where({ teamId: team.id }).whereNull('deletedAt');
  if (!installation) throw invalidSource('installationId', `is not a GitHub App installation of team "${team.slug}"; install the Rhone GitHub App first`);
  if (installation.suspendedAt) throw invalidSource('installationId', `is suspended on GitHub (${installation.accountLogin}); unsuspend it first`);
  const repo = await GithubInstallationRepository.query(knex)
    .where({ installationId: installation.id })
    .whereRaw('lower(full_name) = lower(?)', [source.repo])
    .first();
  if (!repo)
    throw invalidSource(
      'repo',
      `is not one of the repositories the Rhone GitHub App can reach on ${installation.accountLogin}; add it to the installation on GitHub, or pick one from the list`,
    );
  return { type: 'github', repo: repo.fullName, branch: source.branch, installationId: installation.id, repositoryId: repo.repositoryId };
}

function slugTaken(slug: string): ConflictError {
  return new ConflictError('slug_taken', `The app slug "${slug}" is taken; choose another.`, [{ field: 'body.slug', message: 'is taken' }]);
}

export async function listApps(team: Team, limit: number, cursor?: string) {
  const after = decodeCursor(cursor, 1);
  const query = App.query()
    .where({ teamId: team.id })
    .orderBy('slug')
    .limit(limit + 1);
  if (after) query.where('slug', '>', String(after[0]));
  return toPage(await query, limit, (a) => [a.slug]);
}

export async function createApp(knex: Knex, config: Config, actor: Actor, team: Team, input: CreateAppInput): Promise<App> {
  const source = await checkSource(knex, config, team, input.source);
  await assertRegionAllowed(knex, team, input.region);
  return transaction(knex, async (trx) => {
    const rows = (await trx('apps')
      .insert({
        ...input,
        flyAppName: newFlyAppName(input.slug),
        source: JSON.stringify(source),
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
  // A source that passed the checks can be reached: whatever was wrong with the old one is moot.
  const changes: Partial<App> = input.source
    ? { ...(input as Partial<App>), source: await checkSource(knex, config, team, input.source), sourceProblem: null }
    : (input as Partial<App>);
  if (input.region && input.region !== app.region) await assertRegionAllowed(knex, team, input.region, app.id);
  return transaction(knex, async (trx) => {
    const updated = await App.query(trx).patchAndFetchById(app.id, changes);
    await recordAudit(trx, {
      teamId: team.id,
      actor,
      action: 'app.updated',
      subjectType: 'app',
      subjectId: app.id,
      data: { slug: app.slug, fields: Object.keys(input) },
    });
    return updated;
  });
}

/**
 * Deletes the app and schedules the removal of its Fly app (machines, secrets, certificates) in
 * one transaction; a deploy in flight must end first, or it could create machines again.
 */
export async function deleteApp(knex: Knex, queues: QueueContext, actor: Actor, team: Team, app: App): Promise<void> {
  const teardownId = await transaction(knex, async (trx) => {
    const running = await Deployment.query(trx)
      .where({ appId: app.id })
      .whereIn('status', [...IN_FLIGHT_STATUSES])
      .first();
    if (running) {
      throw new ConflictError(
        'deployment_in_flight',
        `Deployment #${running.number} of ${app.slug} is ${running.status}; cancel it (or wait for it to finish), then delete the app.`,
      );
    }
    await App.query(trx).deleteById(app.id);
    const [row] = await trx('appTeardowns').insert({ teamId: team.id, appSlug: app.slug, appId: app.id, flyApp: app.flyAppName }).returning('id');
    await recordAudit(trx, { teamId: team.id, actor, action: 'app.deleted', subjectType: 'app', subjectId: app.id, data: { slug: app.slug, name: app.name } });
    return row.id as string;
  });
  // Lost if Redis is down: the reaper enqueues any teardown still pending a minute later.
  await enqueueTeardown(queues, teardownId, 0).catch(() => {});
}

export const teardownJobId = (id: string, sweep: number) => `teardown-${id}-${sweep}`;

export function enqueueTeardown(queues: QueueContext, teardownId: string, sweep: number) {
  return enqueue(queues, 'appTeardown', { teardownId }, teardownJobId(teardownId, sweep));
}
