// Fly's apps, IP assignments, machine creation and registry, for the fake Fly server
// (fake-fly-machines.ts). As strict as Fly where Rhone depends on it:
// - every request body and every answer is checked against Fly's spec (fly-spec.ts);
// - app names are global: a name in use answers 422 name_taken, unless the idempotency key
//   created it (CreateAppRequest.idempotency_key in the spec);
// - a registry repository belongs to an existing app: `registry.fly.io/<app>` ("Each Fly.io app
//   gets a dedicated registry path", Fly docs blueprints/using-the-fly-docker-registry), and a push
//   for an app that was never created fails with "name unknown: app repository not found";
// - machines belong to an existing app, and run only images that were pushed;
// - a deploy token (POST /v1/apps/{app}/deploy_token) belongs to one existing app ("deploy tokens
//   are limited to a single application", Fly docs reference/deploy-tokens), expires after its
//   `expiry` (a Go duration, as flyctl sends it), and the registry takes it only for that app's
//   repository; a push without a login is 401, as registry.fly.io answers.
import { randomBytes, randomUUID } from 'node:crypto';
import { parseDuration } from '../../local/durations.ts';
import type { App, IPAssignment } from '../../backend/providers/fly/types.ts';
import { findPathTemplate, validateRequest, validateResponse } from './fly-spec.ts';

export interface FakeApp {
  id: string;
  name: string;
  orgSlug: string;
  network: string;
  ips: IPAssignment[];
  idempotencyKey?: string;
}

export interface FakeApps {
  apps: Map<string, FakeApp>;
  /** Pushed images, `<app>:<tag>` and `<app>@<digest>`. */
  images: Set<string>;
  /** What happened, in order: "app.create <name>", "registry.push <app>:<tag>", "ip.assign <app> <type>", "app.delete <name>". */
  history: string[];
  /** Minted deploy tokens ("FlyV1 fm2_…") and the one app each may act on. */
  deployTokens: Map<string, { app: string; expiresAt: number }>;
  /** Creates an app directly, as someone else on Fly would. */
  add(app: { name: string; network?: string; orgSlug?: string }): FakeApp;
  /** The answer to a request this part of the fake serves, or undefined. */
  handle(method: string, url: URL, raw: string, headers?: Record<string, string | string[] | undefined>): { status: number; body: unknown } | undefined;
}

type Answer = { status: number; body: unknown };
const REGISTRY = 'registry.fly.io/';

export function createFakeApps(): FakeApps {
  const apps = new Map<string, FakeApp>();
  const images = new Set<string>();
  const history: string[] = [];
  const deployTokens = new Map<string, { app: string; expiresAt: number }>();

  const add: FakeApps['add'] = ({ name, network = 'default', orgSlug = 'rhone' }) => {
    const app: FakeApp = { id: randomUUID(), name, orgSlug, network, ips: [] };
    apps.set(name, app);
    return app;
  };
  const present = (a: FakeApp): App & { network: string } => ({
    id: a.id,
    name: a.name,
    status: 'deployed',
    organization: { slug: a.orgSlug, name: a.orgSlug },
    network: a.network,
  });
  const error = (status: number, message: string, code?: string): Answer => ({ status, body: { error: message, ...(code ? { status: code } : {}) } });

  function api(method: string, path: string, query: URLSearchParams, body: unknown): Answer | undefined {
    if (method === 'POST' && path === '/v1/apps') {
      const input = body as { name?: string; org_slug?: string; network?: string; idempotency_key?: string };
      if (!input.name || !input.org_slug) return error(400, 'name and org_slug are required');
      const existing = apps.get(input.name);
      if (existing) {
        if (input.idempotency_key && existing.idempotencyKey === input.idempotency_key) return { status: 201, body: { id: existing.id, created_at: 0 } };
        return error(422, `Name "${input.name}" has already been taken`, 'name_taken');
      }
      const app = add({ name: input.name, network: input.network, orgSlug: input.org_slug });
      app.idempotencyKey = input.idempotency_key;
      history.push(`app.create ${app.name}${query.get('wait') === 'true' ? ' wait' : ''}`);
      return { status: 201, body: { id: app.id, created_at: Date.now() } };
    }
    const m = /^\/v1\/apps\/([^/]+)(\/.*)?$/.exec(path);
    if (!m) return undefined;
    const name = decodeURIComponent(m[1]);
    const rest = m[2] ?? '';
    const app = apps.get(name);
    if (rest === '' && method === 'GET') return app ? { status: 200, body: present(app) } : error(404, 'app not found');
    if (rest === '' && method === 'DELETE') {
      if (!app) return error(404, 'app not found');
      apps.delete(name);
      history.push(`app.delete ${name}`);
      return { status: 202, body: undefined };
    }
    if (rest === '/deploy_token' && method === 'POST') {
      if (!app) return error(404, 'app not found');
      const { expiry } = (body ?? {}) as { expiry?: unknown };
      // Go's time.ParseDuration wants a unit: "600" is "missing unit", not 600 ns.
      const ms = expiry === undefined ? 20 * 365 * 24 * 3600_000 : typeof expiry === 'string' && /^\s*\d+\s*$/.test(expiry) ? undefined : parseDuration(expiry);
      if (typeof expiry !== 'undefined' && (typeof expiry !== 'string' || ms === undefined || ms <= 0)) {
        return error(400, `expiry must be a Go duration such as "30m0s", got ${JSON.stringify(expiry)}`);
      }
      const token = `FlyV1 fm2_${randomBytes(24).toString('base64url')}`;
      deployTokens.set(token, { app: name, expiresAt: Date.now() + (ms ?? 0) });
      history.push(`app.deploy_token ${name}${typeof expiry === 'string' ? ` ${expiry}` : ''}`);
      return { status: 200, body: { token } };
    }
    if (rest === '/ip_assignments' && (method === 'GET' || method === 'POST')) {
      if (!app) return error(404, 'app not found');
      if (method === 'GET') return { status: 200, body: { ips: app.ips } };
      const { type } = body as { type: string };
      const ip =
        type === 'shared_v4'
          ? '66.241.124.1'
          : type === 'v6'
            ? `2a09:8280:1::${(app.ips.length + 1).toString(16)}`
            : type === 'v4'
              ? '137.66.1.1'
              : type === 'private_v6'
                ? 'fdaa:0:1::3'
                : undefined;
      if (!ip) return error(400, `unknown IP type ${type}`);
      const assigned: IPAssignment = { ip, region: 'global', shared: type === 'shared_v4', created_at: new Date().toISOString() };
      app.ips.push(assigned);
      history.push(`ip.assign ${name} ${type}`);
      return { status: 200, body: assigned };
    }
    if (rest === '/machines' && method === 'POST') {
      if (!app) return error(404, 'app not found');
      const image = (body as { config?: { image?: string } }).config?.image ?? '';
      const repo = image.startsWith(REGISTRY) ? image.slice(REGISTRY.length) : undefined;
      if (repo && !images.has(repo)) return error(422, `failed to get manifest ${image}: manifest unknown`);
      history.push(`machine.create ${name}`);
      const now = new Date().toISOString();
      return {
        status: 200,
        body: {
          id: randomUUID().replace(/-/g, '').slice(0, 14),
          name: 'm',
          state: 'created',
          region: 'iad',
          instance_id: 'i',
          config: (body as { config: unknown }).config,
          created_at: now,
          updated_at: now,
        },
      };
    }
    return undefined;
  }

  /** The password of a Basic login (user "x", as `fly auth docker` writes it), or undefined. */
  const loginPassword = (header: string | string[] | undefined): string | undefined => {
    const m = /^Basic\s+(\S+)$/i.exec(typeof header === 'string' ? header : '');
    if (!m) return undefined;
    const decoded = Buffer.from(m[1], 'base64').toString();
    const colon = decoded.indexOf(':');
    return colon === -1 || colon === decoded.length - 1 ? undefined : decoded.slice(colon + 1);
  };

  /** PUT /v2/<app>/manifests/<ref>, the registry's push of an image manifest (Docker Registry API v2). */
  function registry(method: string, path: string, authorization: string | string[] | undefined): Answer | undefined {
    const m = /^\/v2\/([^/]+)\/manifests\/([^/]+)$/.exec(path);
    if (!m || method !== 'PUT') return undefined;
    const [repo, ref] = [decodeURIComponent(m[1]), decodeURIComponent(m[2])];
    const password = loginPassword(authorization);
    if (!password) return { status: 401, body: { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] } };
    // A deploy token (sent without its "FlyV1 " scheme, as registryPassword strips it) pushes only
    // to its own app's repository, and not after it expired. Any other login stands for the org token.
    const scoped = [...deployTokens.entries()].find(([token]) => token.replace(/^FlyV1\s+/, '') === password)?.[1];
    if (scoped && (scoped.app !== repo || scoped.expiresAt <= Date.now())) {
      return { status: 403, body: { errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }] } };
    }
    if (!apps.has(repo)) return { status: 404, body: { errors: [{ code: 'NAME_UNKNOWN', message: 'app repository not found' }] } };
    images.add(ref.startsWith('sha256:') ? `${repo}@${ref}` : `${repo}:${ref}`);
    history.push(`registry.push ${repo}:${ref}`);
    return { status: 201, body: {} };
  }

  return {
    apps,
    images,
    history,
    deployTokens,
    add,
    handle(method, url, raw, headers = {}) {
      const reg = registry(method, url.pathname, headers.authorization);
      if (reg) return reg;
      const template = findPathTemplate(method, url.pathname);
      const body = raw ? (JSON.parse(raw) as unknown) : undefined;
      // The fake refuses what the spec does not describe, and answers only what it describes.
      try {
        if (template) validateRequest(method, template, body);
      } catch (err) {
        return error(400, (err as Error).message);
      }
      const answer = api(method, url.pathname, url.searchParams, body);
      if (!answer) return undefined;
      try {
        if (template && answer.body !== undefined) validateResponse(method, template, answer.status, answer.body);
      } catch (err) {
        return error(500, `the fake's own answer is off-spec: ${(err as Error).message}`);
      }
      return answer;
    },
  };
}
