// upload-usage (daily): closes the UTC days that ended and sends their usage to Stripe as meter
// events, exactly once (backend/billing/upload-usage.ts). Without Stripe it logs why it skipped.
import type { Job } from 'bullmq';
import { uploadUsage } from '../../backend/billing/upload-usage.ts';
import { stripeClient } from '../../backend/billing/stripe.ts';
import { QUEUES } from '../queues.ts';
import type { PipelineDeps } from '../stage.ts';

export const definition = QUEUES.uploadUsage;

export function processor(deps: PipelineDeps) {
  return async (job: Job) => {
    definition.payload.parse(job.data);
    const result = await uploadUsage(deps.knex, stripeClient(deps.config), { log: deps.log });
    // What is still pending (Stripe rate-limiting or down) is sent by the job's next attempt.
    if (result.pending > 0) throw new Error(`${result.pending} meter events could not be sent to Stripe yet; the next attempt sends them`);
    return result;
  };
}
