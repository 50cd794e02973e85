// The explicit list of processors a worker runs.
import type { Job } from 'bullmq';
import type { QueueKey } from '../queues.ts';
import { stageProcessor, type PipelineDeps } from '../stage.ts';
import * as housekeeping from './housekeeping.ts';
import * as appTeardown from './app-teardown.ts';
import { clone } from './clone.ts';
import { analyze } from './analyze.ts';
import { build } from './build.ts';
import { deploy } from './deploy.ts';
import { reaper } from './reaper.ts';
import * as webhooks from './webhooks.ts';
import * as uploadUsage from './upload-usage.ts';
import * as commitStatus from './commit-status.ts';
import * as pollUsage from './poll-usage.ts';
import * as checkCertificates from './check-certificates.ts';

export type ProcessorDeps = PipelineDeps;

export type Processor = (job: Job, token?: string) => Promise<unknown>;

export const PROCESSORS: Partial<Record<QueueKey, (deps: ProcessorDeps) => Processor>> = {
  clone: (deps) => stageProcessor(clone, deps),
  analyze: (deps) => stageProcessor(analyze, deps),
  build: (deps) => stageProcessor(build, deps),
  deploy: (deps) => stageProcessor(deploy, deps),
  housekeeping: ({ knex, config }) => housekeeping.processor(knex, config),
  appTeardown: ({ knex, config }) => appTeardown.processor(knex, config),
  reaper: (deps) => reaper(deps),
  webhooks: (deps) => webhooks.processor(deps),
  uploadUsage: (deps) => uploadUsage.processor(deps),
  commitStatus: (deps) => commitStatus.processor(deps),
  pollUsage: (deps) => pollUsage.processor(deps),
  checkCertificates: (deps) => checkCertificates.processor(deps),
};
