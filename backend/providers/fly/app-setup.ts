// What a Fly app needs before anything is pushed to it or run in it: to exist, in its own private
// network, with public addresses. Fly's registry path `registry.fly.io/<app>` belongs to an
// existing app (flyctl creates the app before it builds), so the build stage calls ensureFlyApp
// before the push, and the release calls it again (harmless) before machines.
import type { FlyClient } from './client.ts';
import { FlyApiError } from './errors.ts';
import { flyNetworkForApp } from './names.ts';
import { META, type App } from './types.ts';

/** The Fly app of that name is someone else's (Fly app names are global): never deploy into it, never delete it. */
export class FlyAppNotOursError extends Error {
  readonly code = 'fly_app_not_ours';
  /** Retrying cannot help (jobs/stage.ts). */
  readonly permanent = true;
  constructor(readonly flyApp: string) {
    super(
      `The Fly app name "${flyApp}" is in use by an app that is not this one (Fly app names are global across all of Fly), so Rhone will not deploy into it. Delete this app in Rhone and create it again: the new app gets a new Fly app name.`,
    );
    this.name = 'FlyAppNotOursError';
  }
}

/**
 * Whether a Fly app is the one Rhone made for this Rhone app. The Apps API has no metadata, so the
 * mark is the app's own private network, `rhone-app-<id>` (Fly returns `network` on
 * GET /v1/apps/{app}). Apps made before Rhone gave each app a network sit in the org's default
 * one; for those the mark is their machines' `rhone_app` metadata.
 */
export async function isOurFlyApp(client: FlyClient, app: App, appId: string): Promise<boolean> {
  if (app.network === flyNetworkForApp(appId)) return true;
  if (app.network && app.network !== 'default') return false;
  const machines = await client.listMachines(app.name, { metadata: { [META.app]: appId }, pageSize: 1 });
  return machines.length > 0;
}

/**
 * Creates the Fly app unless it exists, in its own network; the idempotency key makes a retried
 * create return the first app. An app of that name that is not ours throws FlyAppNotOursError.
 */
export async function ensureFlyApp(client: FlyClient, name: string, org: string, appId: string, log?: (line: string) => void): Promise<void> {
  let existing = await client.getApp(name);
  if (!existing) {
    log?.(`Creating Fly app ${name}`);
    try {
      await client.createApp({ name, org_slug: org, network: flyNetworkForApp(appId), idempotency_key: `rhone-app-${appId}` });
      return;
    } catch (err) {
      if (!(err instanceof FlyApiError && err.code === 'name_taken')) throw err;
      existing = await client.getApp(name);
      // Taken by an app this token cannot see: another org's, on Fly's global namespace.
      if (!existing) throw new FlyAppNotOursError(name);
    }
  }
  if (!(await isOurFlyApp(client, existing, appId))) throw new FlyAppNotOursError(name);
}

/**
 * A shared IPv4 and an IPv6 address, as flyctl's first deploy allocates them
 * (`provisionIpsOnFirstDeploy`, internal/command/deploy/deploy_first.go: v6, then shared_v4, over
 * POST /v1/apps/{app}/ip_assignments): without them `<app>.fly.dev` does not resolve, a custom
 * domain's A/AAAA records have nothing to point at, and Let's Encrypt's HTTP validation needs the
 * IPv6 one. Allocates only what is missing, so a second release allocates nothing.
 */
export async function ensurePublicIps(client: FlyClient, name: string, log?: (line: string) => void): Promise<void> {
  const ips = await client.listIps(name);
  // Private (Flycast) v6 addresses are fd..::/8; they do not serve the internet.
  const hasV6 = ips.some((i) => i.ip.includes(':') && !i.ip.toLowerCase().startsWith('fd'));
  const hasV4 = ips.some((i) => !i.ip.includes(':'));
  if (!hasV6) await client.assignIp(name, 'v6');
  if (!hasV4) await client.assignIp(name, 'shared_v4');
  if (!hasV6 || !hasV4) log?.(`Allocated public addresses for ${name}.fly.dev (${[!hasV6 && 'IPv6', !hasV4 && 'shared IPv4'].filter(Boolean).join(' and ')})`);
}
