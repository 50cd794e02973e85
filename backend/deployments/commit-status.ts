// Reporting a deployment back to GitHub as a commit status on its commit: pending while it is
// queued or running, success with the app's URL once live, failure with the reason, error when it
// was canceled or superseded. Each change enqueues a job (commit-status); the job posts the state
// the deployment is in when it runs, so a late or retried job never puts an older state over a
// newer one. GitHub being unreachable delays a report; it never fails a deployment.
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { App, Deployment, type DeploymentStatus } from '../models/index.ts';
import { logger } from '../lib/logger.ts';
import { appUrl } from '../presenters/index.ts';
import { githubAppConfigured, repoClient } from '../providers/github/index.ts';
import { enqueue, type QueueContext } from '../../jobs/queues.ts';
import type { ConfigSnapshot } from './snapshot.ts';

export type CommitState = 'pending' | 'success' | 'failure' | 'error';

const STATE: Partial<Record<DeploymentStatus, CommitState>> = {
  queued: 'pending',
  cloning: 'pending',
  analyzing: 'pending',
  building: 'pending',
  deploying: 'pending',
  live: 'success',
  failed: 'failure',
  canceled: 'error',
  superseded: 'error',
  // replaced: the commit did go live; its success stays. skipped: nothing is reported.
};

const DESCRIPTION_MAX = 140; // GitHub's limit

type Reportable = Pick<Deployment, 'id' | 'commitSha' | 'configSnapshot'>;

function githubSource(d: Reportable) {
  const source = (d.configSnapshot as ConfigSnapshot | null)?.source;
  return source?.type === 'github' && d.commitSha ? source : null;
}

/**
 * Asks for the deployments' commit statuses to be brought up to date, now that they are in
 * `status` (or, with a list, each in the status given). Only deployments of GitHub sources are
 * reported. Never throws: a queue that cannot be reached is logged, and the deployment goes on.
 */
export async function reportCommitStatus(
  queues: QueueContext,
  changes: { deployment: Reportable; status: DeploymentStatus }[],
  log: Logger = logger(),
): Promise<void> {
  for (const { deployment, status } of changes) {
    const state = STATE[status];
    if (!state || !githubSource(deployment)) continue;
    // One job per deployment and state: queued and building are the same "pending".
    await enqueue(queues, 'commitStatus', { deploymentId: deployment.id }, `status-${deployment.id}-${state}`).catch((err: unknown) =>
      log.warn({ err, deploymentId: deployment.id }, 'could not enqueue the GitHub commit status report'),
    );
  }
}

function describe(d: Deployment, state: CommitState): string {
  const text =
    state === 'pending'
      ? `Rhone deployment #${d.number} is ${d.status}`
      : state === 'success'
        ? `Live: deployment #${d.number}`
        : (d.reason ?? `Deployment #${d.number} ${d.status}`);
  return text.length > DESCRIPTION_MAX ? `${text.slice(0, DESCRIPTION_MAX - 1)}…` : text;
}

/**
 * The job's work: post the state the deployment is in now, unless it was posted already. After a
 * post it looks again, in case the deployment moved on meanwhile (a concurrent job's older post
 * may have landed after a newer one): the last post always matches the row.
 */
export async function postCommitStatus(knex: Knex, config: Config, deploymentId: string): Promise<CommitState | null> {
  let posted: CommitState | null = null;
  for (let round = 0; round < 4; round++) {
    const d = await Deployment.query(knex).findById(deploymentId);
    const source = d && githubSource(d);
    const state = d && STATE[d.status];
    if (!d || !source || !state || !githubAppConfigured(config)) return posted;
    if (d.githubStatus === state && (posted === state || round === 0)) return posted;
    const snapshot = d.configSnapshot;
    const client = await repoClient(config, source.installationId, { fullName: source.repo, id: source.repositoryId }, { statuses: 'write' });
    const [owner, repo] = source.repo.split('/');
    // The live app's address is its stored Fly app's (appUrl); a deleted app has none.
    const app = state === 'success' ? await App.query(knex).findById(d.appId) : undefined;
    await client.request('POST /repos/{owner}/{repo}/statuses/{sha}', {
      owner,
      repo,
      sha: d.commitSha!,
      state,
      context: `rhone/${snapshot.slug}`,
      description: describe(d, state),
      target_url: app ? appUrl(config, app) : `${config.publicUrl}/apps/${snapshot.slug}/deployments/${d.id}`,
    });
    await Deployment.query(knex).patch({ githubStatus: state }).where({ id: d.id });
    posted = state;
  }
  return posted;
}
