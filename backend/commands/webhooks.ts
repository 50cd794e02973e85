// Webhook deliveries, whatever their provider: stored once per delivery id (a redelivery finds the
// row and changes nothing), then processed by a job. A row that was stored but whose job never ran
// (the queue was unreachable at the time) is enqueued again by a redelivery, or by the sweeper.
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { enqueue, type QueueContext } from '../../jobs/queues.ts';

export type WebhookProvider = 'github' | 'stripe';

export interface IncomingDelivery {
  provider: WebhookProvider;
  deliveryId: string;
  event: string;
  action: string | null;
  payload: unknown;
}

/** BullMQ job ids may not contain ":"; delivery ids are GUIDs (GitHub) or evt_ ids (Stripe). */
const jobIdOf = (provider: WebhookProvider, deliveryId: string) => `${provider}-${deliveryId}`;

async function enqueueDelivery(queues: QueueContext, provider: WebhookProvider, deliveryId: string): Promise<void> {
  await enqueue(queues, 'webhooks', { provider, deliveryId }, jobIdOf(provider, deliveryId));
}

/**
 * Stores the delivery unless it was stored before, and enqueues its processing. Returns whether it
 * was new. Throws only when the queue cannot be reached; the row is kept for the sweeper then.
 */
export async function receiveDelivery(knex: Knex, queues: QueueContext, d: IncomingDelivery): Promise<{ duplicate: boolean }> {
  const inserted = (await knex('webhookDeliveries')
    .insert({ provider: d.provider, deliveryId: d.deliveryId, event: d.event, action: d.action, payload: JSON.stringify(d.payload) })
    .onConflict(['provider', 'deliveryId'])
    .ignore()
    .returning('id')) as { id: number }[];
  if (inserted.length === 0) {
    const row = await knex('webhookDeliveries').where({ provider: d.provider, deliveryId: d.deliveryId }).first('processedAt');
    // Stored but never processed: the job id makes this a no-op if the job is still there.
    if (row && !row.processedAt) await enqueueDelivery(queues, d.provider, d.deliveryId);
    return { duplicate: true };
  }
  await enqueueDelivery(queues, d.provider, d.deliveryId);
  return { duplicate: false };
}

const SWEEP_AFTER_MS = 60_000;
const SWEEP_WITHIN_MS = 24 * 3600_000;

/** Enqueues deliveries that were stored over a minute ago (and within a day) and are not processed. */
export async function sweepDeliveries(knex: Knex, queues: QueueContext, log: Logger, now = Date.now()): Promise<number> {
  const rows = (await knex('webhookDeliveries')
    .whereNull('processedAt')
    .whereBetween('receivedAt', [new Date(now - SWEEP_WITHIN_MS), new Date(now - SWEEP_AFTER_MS)])
    .select('provider', 'deliveryId')
    .limit(500)) as { provider: WebhookProvider; deliveryId: string }[];
  for (const row of rows) {
    await enqueueDelivery(queues, row.provider, row.deliveryId).catch((err: unknown) =>
      log.warn({ err, deliveryId: row.deliveryId }, 'could not enqueue a webhook delivery'),
    );
  }
  return rows.length;
}
