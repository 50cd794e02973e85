// What can stop a running stage from outside, each behind the stage's one AbortController: its
// deadline, a cancel published through Redis (jobs/cancel.ts), and a cancel the heartbeat reads
// from the row (a lost pub/sub message only delays a cancel by a heartbeat). The abort reason
// says which: a CanceledError for a cancel, a StageTimeoutError for the deadline.
import type { Logger } from 'pino';
import type { Knex } from 'knex';
import { Deployment } from '../backend/models/index.ts';
import type { Stage } from '../backend/deployments/pipeline.ts';
import { CanceledError, PermanentError } from '../backend/lib/errors.ts';
import { watchCancel } from './cancel.ts';

const HEARTBEAT_MS = 5000;

/** The stage ran past its queue's timeout. The user has to make it faster: not retried. */
export class StageTimeoutError extends PermanentError {
  constructor(stage: Stage, timeoutMs: number) {
    super(`The ${stage} stage took longer than ${Math.round(timeoutMs / 60000)} min and was stopped.`);
  }
}

export interface StageGuards {
  signal: AbortSignal;
  /** Ends the deadline, the heartbeat and the cancel watch. */
  stop(): void;
}

interface GuardOptions {
  knex: Knex;
  log: Logger;
  deployment: Pick<Deployment, 'id' | 'cancelRequestedAt'>;
  stage: Stage;
  timeoutMs: number;
}

export function guardStage({ knex, log, deployment, stage, timeoutMs }: GuardOptions): StageGuards {
  const controller = new AbortController();
  const cancel = () => controller.abort(new CanceledError());
  const stops = [deadline(controller, stage, timeoutMs), watchCancel(deployment.id, cancel), heartbeat(knex, log, deployment.id, cancel)];
  if (deployment.cancelRequestedAt) cancel();
  return { signal: controller.signal, stop: () => stops.forEach((stop) => stop()) };
}

function deadline(controller: AbortController, stage: Stage, timeoutMs: number): () => void {
  const timer = setTimeout(() => controller.abort(new StageTimeoutError(stage, timeoutMs)), timeoutMs);
  return () => clearTimeout(timer);
}

/** Tells the reaper the stage is alive (jobs/processors/reaper.ts), and reads a cancel off the row. */
function heartbeat(knex: Knex, log: Logger, deploymentId: string, onCancel: () => void): () => void {
  const timer = setInterval(() => {
    void Deployment.query(knex)
      .patch({ heartbeatAt: new Date() })
      .where({ id: deploymentId })
      .returning(['cancelRequestedAt'])
      .then((rows) => {
        if ((rows as unknown as Pick<Deployment, 'cancelRequestedAt'>[])[0]?.cancelRequestedAt) onCancel();
      })
      .catch((err: unknown) => log.warn({ err, deploymentId }, 'heartbeat failed'));
  }, HEARTBEAT_MS);
  return () => clearInterval(timer);
}
