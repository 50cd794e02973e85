import { TimestampedModel, BaseModel } from './BaseModel.ts';
import type { DrainFigures } from '../lib/drain-summary.ts';
import type { DeploymentStatus, Stage, StageTiming } from '../deployments/pipeline.ts';
import type { ConfigSnapshot } from '../deployments/snapshot.ts';

// The pipeline's words live in backend/deployments/pipeline.ts; re-exported for the models' importers.
export { ACTIVE_STATUSES, TERMINAL_STATUSES, type DeploymentStatus } from '../deployments/pipeline.ts';

export class Deployment extends TimestampedModel {
  static tableName = 'deployments';
  static jsonAttributes = ['configSnapshot', 'plan', 'stageTimings', 'drain', 'resolvedPackages'];

  id!: string;
  appId!: string;
  number!: number;
  status!: DeploymentStatus;
  stage!: Stage | null;
  ref!: string | null;
  commitSha!: string | null;
  commitMessage!: string | null;
  trigger!: string;
  triggeredBy!: string | null;
  rollbackOf!: string | null;
  configSnapshot!: ConfigSnapshot;
  plan!: Record<string, unknown> | null;
  /** Package versions Railpack resolved for this deployment (name → version); the next analyze passes them as --previous. */
  resolvedPackages!: Record<string, string> | null;
  image!: string | null;
  reason!: string | null;
  stageTimings!: Record<string, StageTiming>;
  /** What the release's drain did to the old machines' WebSocket clients; null when it replaced none. */
  drain!: DrainFigures | null;
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
