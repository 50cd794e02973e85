// The apps domain's edge in production: `https://{slug}.<RHONE_APPS_DOMAIN>` reaches the app.
//
// One wildcard certificate (`*.<apps domain>`) sits on Rhone's own Fly app, so every request for an
// app's address arrives at the api. The api answers it with a `fly-replay: app=<the app's Fly app>`
// header and Fly's proxy replays the original request to that app's machines, as Fly documents
// for routing between apps ("Dynamic Request Routing with fly-replay",
// https://fly.io/docs/networking/dynamic-request-routing/). WebSockets are replayed too ("works
// for any kind of HTTP request, including WebSockets"), provided the replaying app does not
// negotiate the upgrade itself: an upgrade request gets the same plain answer with the header, and
// after the replay the connection runs between the client and the app, so a long-lived Vango
// socket does not pass through Rhone and is not cut when Rhone's own machines are replaced.
// Limits Fly states: the http handler only, and requests over 1 MB are not replayed (an app that
// takes large uploads should be given a custom domain). Each Rhone app has its own private
// network, so the organization must allow replays across networks (`fly orgs
// cross-network-replays enable`, docs/production.md).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Knex } from 'knex';
import type { Config } from '../config.ts';

/** How long a slug → Fly app answer is reused by one api process. */
const CACHE_MS = 10_000;
const CACHE_MAX = 10_000;

export interface AppsDomainEdge {
  /** The app's slug when `host` is one of the apps domain's app addresses, else undefined. */
  slugOf(host: string | undefined): string | undefined;
  /** Answers a request for an app's address; false when the host is not one (the api handles it). */
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  /** The same for an upgrade (WebSocket) request, on its raw socket. */
  upgrade(req: IncomingMessage, socket: Duplex): Promise<boolean>;
}

function hostnameOf(header: string | undefined): string {
  return (header ?? '').trim().toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
}

/** Only in production, and only once the operator has set RHONE_APPS_DOMAIN (and its wildcard certificate). */
export function appsDomainEdge(config: Config, knex: Knex): AppsDomainEdge | undefined {
  if (config.isLocal || !config.appsDomainRouted) return undefined;
  const suffix = `.${config.appsDomain}`;
  const dashboardHost = new URL(config.publicUrl).hostname;
  const cache = new Map<string, { flyApp: string | null; at: number }>();

  const flyAppOf = async (slug: string): Promise<string | null> => {
    const hit = cache.get(slug);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.flyApp;
    const row = (await knex('apps').where({ slug }).first('flyAppName')) as { flyAppName: string } | undefined;
    if (cache.size >= CACHE_MAX) cache.clear();
    cache.set(slug, { flyApp: row?.flyAppName ?? null, at: Date.now() });
    return row?.flyAppName ?? null;
  };

  const slugOf = (header: string | undefined) => {
    const host = hostnameOf(header);
    if (host === dashboardHost || !host.endsWith(suffix)) return undefined;
    const label = host.slice(0, -suffix.length);
    return /^[a-z0-9]+(?:-[a-z0-9]+)*$/.test(label) ? label : undefined;
  };

  /** Status, headers and body for an app's address. */
  const answer = async (slug: string): Promise<{ status: number; headers: Record<string, string>; body: string }> => {
    const flyApp = await flyAppOf(slug);
    const base = { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' };
    if (!flyApp)
      return {
        status: 404,
        headers: base,
        body: `There is no app at ${slug}${suffix}. Check the address, or deploy an app with the slug "${slug}" in Rhone.\n`,
      };
    // The body is seen only if Fly's proxy did not replay (replays across networks not enabled).
    return {
      status: 503,
      headers: { ...base, 'fly-replay': `app=${flyApp}` },
      body: `${slug}${suffix} could not be handed to its app. The operator should enable replays across networks (fly orgs cross-network-replays enable).\n`,
    };
  };

  return {
    slugOf,
    async handle(req, res) {
      const slug = slugOf(req.headers.host);
      if (!slug) return false;
      const { status, headers, body } = await answer(slug);
      res.writeHead(status, { ...headers, 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
      return true;
    },
    async upgrade(req, socket) {
      const slug = slugOf(req.headers.host);
      if (!slug) return false;
      const { status, headers, body } = await answer(slug);
      const lines = [
        `HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : 'Service Unavailable'}`,
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
        `content-length: ${Buffer.byteLength(body)}`,
        'connection: close',
      ];
      socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
      return true;
    },
  };
}
