// What a GitHub webhook delivery does, once its signature was checked and it was stored: installation
// events bring the installation and its repositories up to date; a push to an app's tracked branch
// deploys the pushed commit (once per app and commit), or records it as skipped when its message
// asks for that. Pushes to other branches, tags and deleted branches do nothing.
import type { Knex } from 'knex';
import objection from 'objection';
import { z } from 'zod';
import { App } from '../models/index.ts';
import type { Config } from '../config.ts';
import { createDeployment, recordSkippedPush } from './deployments.ts';
import { PlanLimitError } from '../billing/limits.ts';
import { fetchInstallation, storeInstallation, type InstallationState } from './github-installations.ts';
import type { QueueContext } from '../../jobs/queues.ts';

export interface GithubWebhookDeps {
  knex: Knex;
  config: Config;
  queues: QueueContext;
}

/** The events whose deliveries are stored and processed; others are acknowledged and dropped. */
export const GITHUB_EVENTS = ['push', 'installation', 'installation_repositories'] as const;

const installationRef = z.object({ id: z.number().int().positive() });

const pushPayload = z.object({
  ref: z.string(),
  after: z.string(),
  deleted: z.boolean().optional(),
  head_commit: z.object({ id: z.string(), message: z.string() }).nullish(),
  repository: z.object({ id: z.number().int(), full_name: z.string() }),
  installation: installationRef.nullish(),
});

// `sender` is who acted; on installation.created that is who installed the App (or, for a request, the
// owner who approved it; the member who asked is `requester`, and is not recorded).
const installationPayload = z.object({ action: z.string(), installation: installationRef, sender: z.object({ id: z.number().int().positive() }).nullish() });

const NO_COMMIT = /^0{40}$/;
// GitHub's own spelling, and the one Rhone adds.
const SKIP = /\[(skip ci|ci skip|skip deploy)\]/i;

export interface PushOutcome {
  deployed: string[];
  skipped: string[];
  duplicate: string[];
}

/** The apps a push deploys: tracking this branch of this repository through this installation, with auto-deploy on and the source in order. */
async function appsForPush(knex: Knex, installationId: number, repo: { id: number; fullName: string }, branch: string): Promise<App[]> {
  return App.query(knex)
    .joinRaw(`join github_installations as gi on gi.id = (apps.source->>'installationId')::bigint`)
    .select('apps.*')
    .whereRaw(`apps.source->>'type' = 'github' and (apps.source->>'installationId')::bigint = ? and apps.source->>'branch' = ?`, [installationId, branch])
    .where((q) => q.whereRaw(`apps.source->>'repo' = ?`, [repo.fullName]).orWhereRaw(`(apps.source->>'repositoryId')::bigint = ?`, [repo.id]))
    .whereRaw('gi.team_id = apps.team_id')
    .whereNull('gi.deleted_at')
    .whereNull('gi.suspended_at')
    .where('apps.auto_deploy', true)
    .whereNull('apps.source_problem');
}

export async function handlePush(deps: GithubWebhookDeps, raw: unknown): Promise<PushOutcome> {
  const push = pushPayload.parse(raw);
  const outcome: PushOutcome = { deployed: [], skipped: [], duplicate: [] };
  if (!push.ref.startsWith('refs/heads/') || push.deleted || NO_COMMIT.test(push.after) || !push.installation) return outcome;
  const branch = push.ref.slice('refs/heads/'.length);
  const apps = await appsForPush(deps.knex, push.installation.id, { id: push.repository.id, fullName: push.repository.full_name }, branch);
  const message = push.head_commit?.message ?? null;
  const skip = message ? SKIP.exec(message) : null;
  for (const app of apps) {
    try {
      if (skip) {
        const reason = `Skipped: the commit message contains ${skip[0]}.`;
        await recordSkippedPush(deps.knex, deps.queues, app, { ref: branch, commitSha: push.after, commitMessage: message, reason });
        outcome.skipped.push(app.slug);
      } else {
        await createDeployment(deps.knex, deps.config, deps.queues, null, app, { trigger: 'push', ref: branch, commitSha: push.after, commitMessage: message });
        outcome.deployed.push(app.slug);
      }
    } catch (err) {
      // A plan limit refused the deploy: the push is recorded as skipped, saying which limit and how to lift it.
      if (err instanceof PlanLimitError) {
        await recordSkippedPush(deps.knex, deps.queues, app, {
          ref: branch,
          commitSha: push.after,
          commitMessage: message,
          reason: `Not deployed: ${err.message}`,
        });
        outcome.skipped.push(app.slug);
        continue;
      }
      // deployments_push_once: this app already has a deployment of this commit from a push.
      if (!(err instanceof objection.UniqueViolationError)) throw err;
      outcome.duplicate.push(app.slug);
    }
  }
  return outcome;
}

/** Installation events: read the installation from GitHub as it is now and store that. */
export async function handleInstallationEvent(deps: GithubWebhookDeps, raw: unknown): Promise<{ installationId: number; deleted: boolean }> {
  const { action, installation, sender } = installationPayload.parse(raw);
  // An uninstall is final (ids are never reused); everything else may since have changed again.
  const state: InstallationState =
    action === 'deleted' ? { id: installation.id, deleted: true, repositories: [] } : await fetchInstallation(deps.config, installation.id);
  if (action === 'created' && sender && !state.deleted) state.installerGithubId = sender.id;
  await storeInstallation(deps.knex, state);
  return { installationId: installation.id, deleted: state.deleted };
}

export async function handleGithubEvent(deps: GithubWebhookDeps, event: string, payload: unknown): Promise<unknown> {
  if (event === 'push') return handlePush(deps, payload);
  if (event === 'installation' || event === 'installation_repositories') return handleInstallationEvent(deps, payload);
  return { ignored: event };
}
