// poll-usage: every five minutes (jobs/schedules.ts), machine time and bandwidth since the last
// poll, then the quota alerts. The work is in backend/billing/metering.ts.
import type { Job } from 'bullmq';
import { machinesApi } from '../../backend/providers/fly/index.ts';
import { pollUsage } from '../../backend/billing/metering.ts';
import { flyPrometheusBandwidth, localBandwidth, type BandwidthSource } from '../../backend/billing/bandwidth.ts';
import type { Config } from '../../backend/config.ts';
import type { FlyClient } from '../../backend/providers/fly/client.ts';
import { QUEUES } from '../queues.ts';
import type { PipelineDeps } from '../stage.ts';

export const definition = QUEUES.pollUsage;

/** Local mode (the local runtime): the router's counter. Production: Fly's metrics. */
export function bandwidthSource(config: Config, client: FlyClient, org: string): BandwidthSource {
  if (config.isLocal && !config.fly.token) return localBandwidth(client);
  return flyPrometheusBandwidth({ baseUrl: config.fly.metricsUrl ?? 'https://api.fly.io', org, token: config.fly.token! });
}

export function processor(deps: PipelineDeps) {
  return async (job: Job) => {
    definition.payload.parse(job.data);
    const { client, org } = machinesApi(deps.config);
    return pollUsage({ knex: deps.knex, client, org, log: deps.log, bandwidth: bandwidthSource(deps.config, client, org) });
  };
}
