// The explicit list of processors a worker runs.
import type { Job } from 'bullmq';
import type { QueueKey } from '../queues.ts';
import { stageProcessor, type PipelineDeps } from '../stage.ts';
import * as housekeeping from './housekeeping.ts';
import { clone } from './clone.ts';
import { analyze } from './analyze.ts';
import { build } from './build.ts';
import { deploy } from './deploy.ts';
import { reaper } from './reaper.ts';
import * as webhooks from './webhooks.ts';
import * as commitStatus from './commit-status.ts';

export type ProcessorDeps = PipelineDeps;

export type Processor = (job: Job, token?: string) => Promise<unknown>;

export const PROCESSORS: Partial<Record<QueueKey, (deps: ProcessorDeps) => Processor>> = {
  clone: (deps) => stageProcessor(clone, deps),
  analyze: (deps) => stageProcessor(analyze, deps),
  build: (deps) => stageProcessor(build, deps),
  deploy: (deps) => stageProcessor(deploy, deps),
  housekeeping: ({ knex }) => housekeeping.processor(knex),
  reaper: (deps) => reaper(deps),
  webhooks: (deps) => webhooks.processor(deps),
  commitStatus: (deps) => commitStatus.processor(deps),
};
