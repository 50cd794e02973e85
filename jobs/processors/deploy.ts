// deploy: the blue/green release of the built image with the snapshot's settings and env vars.
// The env values are decrypted here (and, for the build's commands, in the build stage), sent to
// Fly as app secrets, and redacted from every log line.
import type { Config } from '../../backend/config.ts';
import type { FlyClient } from '../../backend/providers/fly/client.ts';
import { localMachinesApi, machinesApi } from '../../backend/providers/fly/index.ts';
import { release } from '../../backend/releases/blue-green.ts';
import { flyMetricsDrain, routerDrain, type DrainSource } from '../../backend/releases/drain.ts';
import { describeDrain, type DrainFigures } from '../../backend/lib/drain-summary.ts';
import { openSnapshotEnv } from '../../backend/deployments/snapshot.ts';
import type { StageDefinition } from '../stage.ts';

export const deploy: StageDefinition = {
  stage: 'deploy',
  async run({ deployment, app, snapshot, signal, log, redact, deps }) {
    if (!deployment.image) throw new Error('the deployment has no image yet');
    const secrets = await openSnapshotEnv(deps.knex, deps.config.encryptionKeys, app.id, snapshot);
    redact(Object.values(secrets));
    const { client, org, timing } = machinesApi(deps.config);
    const result = await release(
      {
        // The stored name: never recomputed from the slug, which another Fly customer may own.
        flyApp: app.flyAppName,
        appId: app.id,
        deploymentId: deployment.id,
        releaseVersion: deployment.number,
        image: deployment.image,
        settings: snapshot.settings,
        secrets,
        env: { RHONE_RELEASE: `#${deployment.number}`, RHONE_COMMIT: deployment.commitSha ?? '' },
      },
      {
        client,
        org,
        timing,
        log: (line) => log(line),
        signal,
        // Locally the runtime keeps each machine's output; show the end of it where the user looks.
        // In production Fly's log API is not wired in yet: the reason carries the exit code and
        // oom_killed from the machine's events instead (backend/releases/machine-failure.ts).
        onUnhealthy: deps.config.isLocal && !deps.config.fly.token ? (flyApp, id) => showMachineOutput(deps.config, flyApp, id, log) : undefined,
      },
    );
    // The old release's WebSocket clients: how many it closed, how many came back (after the
    // release: traffic has moved, so a failure here is told and does not fail the deploy).
    let drain: DrainFigures | null = null;
    if (result.drainStartedAt !== undefined) {
      try {
        drain = await drainSource(deps.config, client, org).measure({
          flyApp: app.flyAppName,
          drained: result.replaced,
          serving: result.machines,
          startedAt: result.drainStartedAt,
          signal,
        });
        log(describeDrain(drain));
      } catch (err) {
        deps.log.warn({ err, deploymentId: deployment.id }, 'reading the drain figures failed');
        log(`Could not read how many connections the old release drained (${(err as Error).message}); the release itself is complete.`, 'stderr');
      }
    }
    log(`Live on ${result.machines.length} machine${result.machines.length === 1 ? '' : 's'}`);
    return drain ? { drain } : undefined;
  },
};

/** Local mode (the local runtime): the router's count. Production: Fly's metrics. */
export function drainSource(config: Config, client: FlyClient, org: string): DrainSource {
  if (config.isLocal && !config.fly.token) return routerDrain(client);
  return flyMetricsDrain({ baseUrl: config.fly.metricsUrl ?? 'https://api.fly.io', org, token: config.fly.token! });
}

const OUTPUT_LINES = 30;

/** True when it showed output: the failure reason then points at it. */
async function showMachineOutput(
  config: Config,
  flyApp: string,
  id: string,
  log: (line: string, stream?: 'stdout' | 'stderr' | 'system') => void,
): Promise<boolean> {
  try {
    const { baseUrl, token } = localMachinesApi(config);
    const res = await fetch(`${baseUrl}/v1/apps/${encodeURIComponent(flyApp)}/machines/${encodeURIComponent(id)}/logs?tail=${OUTPUT_LINES}`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(5000),
    });
    if (!res.ok) return false;
    const lines = (await res.text()).split('\n').filter((l) => l.trim() !== '');
    if (lines.length === 0) return false;
    log(`Last output of machine ${id.slice(0, 8)}:`);
    for (const line of lines) log(line, 'stderr');
    return true;
  } catch {
    // The output is a courtesy; the failure reason stands on its own.
    return false;
  }
}
