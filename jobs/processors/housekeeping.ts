// Daily clean-up of what has outlived its use: rows, and the files deployments leave behind.
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Job } from 'bullmq';
import type { Knex } from 'knex';
import type { Config } from '../../backend/config.ts';
import type { ArtifactStore } from '../../backend/source/artifacts.ts';
import { TERMINAL_STATUSES } from '../../backend/deployments/pipeline.ts';
import { artifactStore } from '../artifacts.ts';
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

/** A finished deployment's source stays this long (a retried stage could still want it). */
export const SOURCE_RETENTION_MS = 3_600_000;
/** How far back each run looks for finished deployments; covers runs missed for a few days. */
export const SOURCE_SWEEP_WINDOW_DAYS = 7;
/** A stage's scratch directory older than this belongs to a worker that died mid-stage. */
export const WORK_DIR_MAX_AGE_MS = DAY_MS;

export interface FilesResult {
  prunedSources: number;
  removedWorkDirs: number;
}

/**
 * Removes the source artifacts of deployments that finished more than an hour ago (the build
 * result is an image: a rollback never needs the source), and the scratch directories
 * (`work-*` in the data directory) that a killed worker could not clean up.
 */
export async function pruneDeploymentFiles(knex: Knex, store: ArtifactStore, dataDir: string, now = new Date()): Promise<FilesResult> {
  const finished = (await knex('deployments')
    .whereIn('status', [...TERMINAL_STATUSES])
    .whereBetween('finishedAt', [new Date(now.getTime() - SOURCE_SWEEP_WINDOW_DAYS * DAY_MS), new Date(now.getTime() - SOURCE_RETENTION_MS)])
    .pluck('id')) as string[];
  let prunedSources = 0;
  for (const id of finished) {
    if (!(await store.has(`deployments/${id}/source`))) continue;
    await store.remove(`deployments/${id}`);
    prunedSources++;
  }
  let removedWorkDirs = 0;
  const entries = await readdir(dataDir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isDirectory() || !entry.name.startsWith('work-')) continue;
    const dir = path.join(dataDir, entry.name);
    const { mtimeMs } = await stat(dir);
    if (now.getTime() - mtimeMs < WORK_DIR_MAX_AGE_MS) continue;
    await rm(dir, { recursive: true, force: true });
    removedWorkDirs++;
  }
  return { prunedSources, removedWorkDirs };
}

export function processor(knex: Knex, config: Config) {
  return async (job: Job) => {
    definition.payload.parse(job.data);
    return { ...(await housekeeping(knex)), ...(await pruneDeploymentFiles(knex, artifactStore(config), config.dataDir)) };
  };
}
