// What a Fly app needs before it can serve: to exist, and (for custom domains) public addresses.
import type { FlyClient } from './client.ts';
import { FlyApiError } from './errors.ts';

/** Creates the Fly app unless it exists; the idempotency key makes a retried create return the first app. */
export async function ensureFlyApp(client: FlyClient, name: string, org: string, appId: string, log?: (line: string) => void): Promise<void> {
  if (await client.getApp(name)) return;
  log?.(`Creating Fly app ${name}`);
  try {
    await client.createApp({ name, org_slug: org, idempotency_key: `rhone-app-${appId}` });
  } catch (err) {
    if (!(err instanceof FlyApiError && err.code === 'name_taken' && (await client.getApp(name)))) throw err;
  }
}

/**
 * A shared IPv4 and an IPv6 address, as flyctl's first deploy allocates them: a custom domain's
 * A/AAAA records point at them, and Let's Encrypt's HTTP validation needs the IPv6 one.
 */
export async function ensurePublicIps(client: FlyClient, name: string): Promise<void> {
  const ips = await client.listIps(name);
  // Private (Flycast) v6 addresses are fd..::/8; they do not serve the internet.
  if (!ips.some((i) => !i.ip.includes(':'))) await client.assignIp(name, 'shared_v4');
  if (!ips.some((i) => i.ip.includes(':') && !i.ip.toLowerCase().startsWith('fd'))) await client.assignIp(name, 'v6');
}
