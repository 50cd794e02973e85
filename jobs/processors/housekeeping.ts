// Daily clean-up of rows that have outlived their use.
import type { Job } from 'bullmq';
import type { Knex } from 'knex';
import { QUEUES } from '../queues.ts';

export const definition = QUEUES.housekeeping;

const DAY_MS = 86_400_000;
export const WEBHOOK_DELIVERY_RETENTION_DAYS = 30;
export const REVOKED_TOKEN_RETENTION_DAYS = 90;

export interface HousekeepingResult {
  expiredInvitations: number;
  oldWebhookDeliveries: number;
  revokedTokens: number;
  endedSessions: number;
}

export async function housekeeping(knex: Knex, now = new Date()): Promise<HousekeepingResult> {
  const expiredInvitations = await knex('invitations').where('expiresAt', '<', now).delete();
  // Only processed deliveries go: an unprocessed one is still owed its work.
  const oldWebhookDeliveries = await knex('webhookDeliveries')
    .whereNotNull('processedAt')
    .where('receivedAt', '<', new Date(now.getTime() - WEBHOOK_DELIVERY_RETENTION_DAYS * DAY_MS))
    .delete();
  const revokedTokens = await knex('apiTokens')
    .where('revokedAt', '<', new Date(now.getTime() - REVOKED_TOKEN_RETENTION_DAYS * DAY_MS))
    .delete();
  const endedSessions = await knex('sessions')
    .where('expiresAt', '<', now)
    .orWhere('revokedAt', '<', new Date(now.getTime() - DAY_MS))
    .delete();
  return { expiredInvitations, oldWebhookDeliveries, revokedTokens, endedSessions };
}

export function processor(knex: Knex) {
  return async (job: Job) => {
    definition.payload.parse(job.data);
    return housekeeping(knex);
  };
}
