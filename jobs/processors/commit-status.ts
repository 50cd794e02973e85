// commit-status: brings the GitHub commit status of a deployment's commit up to date
// (backend/deployments/commit-status.ts). GitHub being down is retried with backoff; GitHub
// refusing (the App lacks "Commit statuses: write", the repository is gone) is logged and dropped.
// Either way the deployment itself is never touched.
import { UnrecoverableError, type Job } from 'bullmq';
import { postCommitStatus } from '../../backend/deployments/commit-status.ts';
import { githubErrorForLog, githubTransient } from '../../backend/providers/github/index.ts';
import { QUEUES } from '../queues.ts';
import type { PipelineDeps } from '../stage.ts';

export const definition = QUEUES.commitStatus;

export function processor({ knex, config, log }: PipelineDeps) {
  return async (job: Job) => {
    const { deploymentId } = definition.payload.parse(job.data);
    try {
      return { posted: await postCommitStatus(knex, config, deploymentId) };
    } catch (err) {
      log.warn({ deploymentId, attempt: job.attemptsMade + 1, err: githubErrorForLog(err) }, 'could not post the GitHub commit status');
      if (githubTransient(err)) throw err;
      throw new UnrecoverableError(githubErrorForLog(err).message);
    }
  };
}
