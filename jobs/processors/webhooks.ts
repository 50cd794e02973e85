// webhooks: processes one stored delivery. The row says what arrived; a delivery already processed
// is not processed again. One handler per provider; a permanent failure (a payload that is not what
// the handler expects, GitHub refusing Rhone) is recorded on the row and not retried.
import { UnrecoverableError, type Job } from 'bullmq';
import { ZodError } from 'zod';
import { WebhookDelivery } from '../../backend/models/index.ts';
import { handleGithubEvent } from '../../backend/commands/github-webhooks.ts';
import { handleStripeEvent } from '../../backend/commands/stripe-webhooks.ts';
import { githubErrorForLog } from '../../backend/providers/github/index.ts';
import type { AppError } from '../../backend/lib/errors.ts';
import { QUEUES } from '../queues.ts';
import type { PipelineDeps } from '../stage.ts';

export const definition = QUEUES.webhooks;

type Handler = (deps: PipelineDeps, delivery: WebhookDelivery) => Promise<unknown>;

const HANDLERS: Partial<Record<WebhookDelivery['provider'], Handler>> = {
  github: (deps, d) => handleGithubEvent(deps, d.event, d.payload),
  stripe: (deps, d) => handleStripeEvent(deps, d.payload),
};

function isPermanent(err: unknown): boolean {
  if (err instanceof ZodError) return true;
  // An AppError below 500 is a refusal (a conflict, a bad source); a GitHub 4xx is GitHub refusing.
  const status = (err as AppError).status;
  return typeof status === 'number' && status < 500 && status !== 429;
}

export function processor(deps: PipelineDeps) {
  return async (job: Job) => {
    const { provider, deliveryId } = definition.payload.parse(job.data);
    const delivery = await WebhookDelivery.query(deps.knex).findOne({ provider, deliveryId });
    if (!delivery || delivery.processedAt) return { skipped: true };
    const handler = HANDLERS[provider];
    try {
      if (!handler) throw new UnrecoverableError(`no handler for ${provider} webhooks`);
      const result = await handler(deps, delivery);
      await WebhookDelivery.query(deps.knex).patch({ processedAt: new Date(), error: null }).where({ id: delivery.id });
      return result;
    } catch (err) {
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      const permanent = err instanceof UnrecoverableError || isPermanent(err);
      deps.log.warn({ provider, deliveryId, event: delivery.event, attempt: job.attemptsMade + 1, err: githubErrorForLog(err) }, 'webhook delivery failed');
      if (!permanent && !lastAttempt) throw err;
      await WebhookDelivery.query(deps.knex)
        .patch({ processedAt: new Date(), error: githubErrorForLog(err).message.slice(0, 1000) })
        .where({ id: delivery.id });
      throw new UnrecoverableError(githubErrorForLog(err).message);
    }
  };
}
