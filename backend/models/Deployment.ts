import { TimestampedModel, BaseModel } from './BaseModel.ts';

export const ACTIVE_STATUSES = ['queued', 'cloning', 'analyzing', 'building', 'deploying'] as const;
export const TERMINAL_STATUSES = ['live', 'failed', 'canceled', 'superseded', 'replaced', 'skipped'] as const;
export type DeploymentStatus = (typeof ACTIVE_STATUSES)[number] | (typeof TERMINAL_STATUSES)[number];

export class Deployment extends TimestampedModel {
  static tableName = 'deployments';
  static jsonAttributes = ['configSnapshot', 'plan', 'stageTimings'];

  id!: string;
  appId!: string;
  number!: number;
  status!: DeploymentStatus;
  stage!: string | null;
  ref!: string | null;
  commitSha!: string | null;
  commitMessage!: string | null;
  trigger!: string;
  triggeredBy!: string | null;
  rollbackOf!: string | null;
  configSnapshot!: Record<string, unknown>;
  plan!: Record<string, unknown> | null;
  image!: string | null;
  reason!: string | null;
  stageTimings!: Record<string, { startedAt?: string; finishedAt?: string }>;
  lastSeq!: number;
  heartbeatAt!: Date | null;
  cancelRequestedAt!: Date | null;
  cancelRequestedBy!: string | null;
  jobId!: string | null;
  recoveries!: number;
  /** The commit status state last posted to GitHub for this deployment's commit. */
  githubStatus!: string | null;
  startedAt!: Date | null;
  finishedAt!: Date | null;
}

export class DeploymentEvent extends BaseModel {
  static tableName = 'deployment_events';
  static idColumn = ['deploymentId', 'seq'];
  static jsonAttributes = ['data'];

  deploymentId!: string;
  seq!: number;
  type!: 'status' | 'log';
  data!: Record<string, unknown>;
  createdAt!: Date;
}
