// The explicit list of processors a worker runs. Later stages add their entries here.
import type { Job } from 'bullmq';
import type { Knex } from 'knex';
import type { QueueKey } from '../queues.ts';
import * as housekeeping from './housekeeping.ts';

export interface ProcessorDeps {
  knex: Knex;
}

export type Processor = (job: Job) => Promise<unknown>;

export const PROCESSORS: Partial<Record<QueueKey, (deps: ProcessorDeps) => Processor>> = {
  housekeeping: ({ knex }) => housekeeping.processor(knex),
};
