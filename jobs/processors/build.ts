// build: run the plan. Local mode runs its commands natively and stores the result as an image
// of the local runtime; production builds with BuildKit (builder-image/) and pushes to Fly's
// registry, where machines of the same org pull it. Either way the build's commands see the app's
// env vars, as on Railway and Render: decrypted here, passed in the commands' environment (never
// argv), and redacted from every log line the build writes.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildLocal } from '../../backend/builder/local-build.ts';
import { artifactLimits } from '../../backend/source/limits.ts';
import { buildWithBuildkit } from '../../backend/builder/buildkit.ts';
import type { BuildPlan } from '../../backend/builder/plan.ts';
import { machinesApi } from '../../backend/providers/fly/index.ts';
import { ensureFlyApp } from '../../backend/providers/fly/app-setup.ts';
import { openSnapshotEnv } from '../../backend/deployments/snapshot.ts';
import type { Config } from '../../backend/config.ts';
import { artifactStore, sourceKey } from '../artifacts.ts';
import { UserFacingError, type StageContext, type StageDefinition } from '../stage.ts';
import { CanceledError } from '../../backend/lib/errors.ts';
import { recordBuild } from '../../backend/billing/ledger.ts';
import { checkAlerts } from '../../backend/billing/alerts.ts';
import { supervisedStart } from '../../backend/builder/start-command.ts';
import { workDirPrefix } from '../work-dirs.ts';
import { QUEUES } from '../queues.ts';
import { DEFAULT_BUILD_IMAGE_ALLOWLIST, checkPlanImages } from '../../backend/builder/image-allowlist.ts';

const STEP_TIMEOUT_MS = 15 * 60_000;

/**
 * How long a build's registry login lives: the build stage's deadline and a margin, so the push at
 * the end of the longest build still has it, and a leaked one is dead within the hour. As a Go
 * duration ("35m0s"), the form flyctl sends (see FlyClient.createDeployToken).
 */
export const BUILD_TOKEN_EXPIRY = `${Math.ceil((QUEUES.build.timeoutMs + 5 * 60_000) / 60_000)}m0s`;

/** Fly's registry takes the API token without its scheme ("FlyV1 …" → "…"), user "x". */
export function registryPassword(token: string): string {
  return token
    .trim()
    .replace(/^FlyV1\s+/i, '')
    .replace(/^Bearer\s+/i, '');
}

async function buildOnBuildkit(
  ctx: StageContext,
  config: Config,
  sourceDir: string,
  plan: BuildPlan,
  env: Record<string, string>,
  work: string,
): Promise<string> {
  const { deployment, app, signal, log } = ctx;
  if (!config.builder.addr || !config.fly.token) {
    throw new UserFacingError(
      'Production builds need the BuildKit builder: set RHONE_BUILDER_ADDR (and its RHONE_BUILDER_TLS_* certificates) and FLY_API_TOKEN, then deploy again.',
    );
  }
  // The plan's directory is sent to BuildKit as the "dockerfile" source: keep it to the plan alone.
  const planDir = path.join(work, '.rhone-plan');
  await mkdir(planDir);
  const planPath = path.join(planDir, 'railpack-plan.json');
  // Analyze runs `railpack prepare` without the app's env vars (they are opened only here), so the
  // plan does not name them as secrets yet; name them as `prepare --env NAME` would have. Their
  // values reach BuildKit as --secret files, mounted as env vars in the build's commands.
  const secrets = [...new Set([...(plan.secrets ?? []), ...Object.keys(env)])].sort();
  // The plan is the tenant's (railpack.json can name any image): refuse images the operator does
  // not allow, and other apps' images, before anything is built or any credential minted.
  checkPlanImages(plan, { allowlist: config.builder.imageAllowlist ?? DEFAULT_BUILD_IMAGE_ALLOWLIST, flyApp: app.flyAppName });
  // The image's start command runs behind Rhone's signal-forwarding wrapper, so Fly's stop signal
  // (sent to the main process only) reaches the app and it can drain (backend/builder/start-command.ts).
  const deploy = plan.deploy.startCommand ? { ...plan.deploy, startCommand: supervisedStart(plan.deploy.startCommand) } : plan.deploy;
  await writeFile(planPath, JSON.stringify({ ...plan, deploy, secrets }));
  // Fly's registry path belongs to an existing app: create the app (in its own network) before the
  // push, as flyctl does, under the name stored for this app (never recomputed from the slug).
  const { client, org } = machinesApi(config);
  await ensureFlyApp(client, app.flyAppName, org, app.id, (line) => log(line));
  const image = `registry.fly.io/${app.flyAppName}:deploy-${deployment.id}`;
  // The registry login is a deploy token of this one app, minted per build and short-lived, never
  // the org-wide token: Fly's registry is per organization, so the org token would let the build
  // pull any app's image. It goes only into the build's private DOCKER_CONFIG and the redactor.
  const deployToken = registryPassword(await client.createDeployToken(app.flyAppName, BUILD_TOKEN_EXPIRY));
  ctx.redact([deployToken]);
  const result = await buildWithBuildkit({
    contextDir: sourceDir,
    planPath,
    image,
    builderAddr: config.builder.addr,
    registryAuth: { username: 'x', password: deployToken },
    // The layer cache lives in the app's own repository (the deploy token reaches it), so it
    // survives the builder's volume; mount caches stay on that volume (buildkit.ts says why).
    registryCache: `registry.fly.io/${app.flyAppName}:buildcache`,
    tls: config.builder.tls,
    // By app id: a new app that reuses a deleted app's slug must not inherit its cache.
    cacheKey: app.id,
    secrets: env,
    signal,
    log: (stream, line) => log(line, stream),
  });
  return result.digest ? `${image}@${result.digest}` : image;
}

/**
 * Counts the build (builds meter) once it ended, succeeded or failed: it used the builder either
 * way. One per deployment; its window is the build's run time, from the stage's first start (a
 * retried attempt finds it recorded). A canceled build is not counted.
 */
async function countBuild(ctx: StageContext): Promise<void> {
  const { deployment, app, signal, deps } = ctx;
  if (signal.aborted && signal.reason instanceof CanceledError) return;
  try {
    const startedAt = new Date(deployment.stageTimings.build?.startedAt ?? Date.now());
    const { teamIds } = await recordBuild(deps.knex, { teamId: app.teamId, appId: app.id, deploymentId: deployment.id, startedAt, endedAt: new Date() });
    await checkAlerts(deps.knex, teamIds);
  } catch (err) {
    deps.log.error({ err, deploymentId: deployment.id }, 'could not record the build for billing');
  }
}

export const build: StageDefinition = {
  stage: 'build',
  next: 'deploy',
  async run(ctx) {
    try {
      return await runBuild(ctx);
    } finally {
      await countBuild(ctx);
    }
  },
};

async function runBuild(ctx: StageContext) {
  const { deployment, app, snapshot, signal, log, redact, deps } = ctx;
  if (!deployment.plan) throw new Error('the deployment has no build plan yet');
  const env = await openSnapshotEnv(deps.knex, deps.config.encryptionKeys, app.id, snapshot);
  redact(Object.values(env));
  const work = await mkdtemp(workDirPrefix(deps.config.dataDir, 'build'));
  try {
    await artifactStore(deps.config).getDir(sourceKey(deployment.id), path.join(work, 'src'));
    const { provider: _provider, ...plan } = deployment.plan as { provider?: string } & Record<string, unknown>;
    const sourceDir = path.join(work, 'src', snapshot.settings.rootDirectory || '.');
    if (!deps.config.isLocal) {
      const image = await buildOnBuildkit(ctx, deps.config, sourceDir, plan as unknown as BuildPlan, env, work);
      log(`Pushed image ${image}`);
      return { image };
    }
    const result = await buildLocal({
      sourceDir,
      plan: plan as unknown as BuildPlan,
      dataDir: deps.config.dataDir,
      imageName: snapshot.slug,
      tag: deployment.id,
      signal,
      stepTimeoutMs: STEP_TIMEOUT_MS,
      secrets: env,
      limits: artifactLimits(deps.config.sizeLimits),
      log: (stream, line) => log(line, stream),
    });
    log(`Built image ${result.image} in ${(result.durationMs / 1000).toFixed(1)} s`);
    return { image: result.image };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
