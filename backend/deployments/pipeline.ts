// The pipeline's words, in one place and with no dependencies: the stages and their order, the
// status a deployment has in each, and which statuses are in flight or over. The backend (models,
// commands, jobs) and the dashboard (through backend/lib/api-types.ts) both read them, so the two
// can never disagree about what "running" means.

/** The stages, in the order a deployment goes through them. */
export const STAGES = ['clone', 'analyze', 'build', 'deploy'] as const;
export type Stage = (typeof STAGES)[number];

/** The status of a deployment while a stage of it runs. */
export const STAGE_STATUS = { clone: 'cloning', analyze: 'analyzing', build: 'building', deploy: 'deploying' } as const satisfies Record<Stage, string>;

/** A worker is running a stage of it (at most one per app: the one-in-flight index). */
export const IN_FLIGHT_STATUSES = ['cloning', 'analyzing', 'building', 'deploying'] as const satisfies readonly (typeof STAGE_STATUS)[Stage][];
/** Not over yet: waiting for its turn, or in flight. Only these can be canceled. */
export const ACTIVE_STATUSES = ['queued', ...IN_FLIGHT_STATUSES] as const;
/** Over: nothing runs for it any more. */
export const TERMINAL_STATUSES = ['live', 'failed', 'canceled', 'superseded', 'replaced', 'skipped'] as const;

export type InFlightStatus = (typeof IN_FLIGHT_STATUSES)[number];
export type DeploymentStatus = (typeof ACTIVE_STATUSES)[number] | (typeof TERMINAL_STATUSES)[number];

export interface StageTiming {
  startedAt?: string;
  finishedAt?: string;
}
/** When each stage (and the wait in the queue before them) started and finished, as ISO strings. */
export type StageTimings = Partial<Record<Stage | 'queued', StageTiming>>;

export const isActive = (status: string): boolean => (ACTIVE_STATUSES as readonly string[]).includes(status);
export const isTerminal = (status: string): boolean => (TERMINAL_STATUSES as readonly string[]).includes(status);

/** Where a stage comes in the pipeline; -1 before the first (no stage yet). */
export const stageIndex = (stage: Stage | null): number => (stage ? STAGES.indexOf(stage) : -1);
