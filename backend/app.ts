import Koa from 'koa';
import Router from '@koa/router';
import type { Knex } from 'knex';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { SessionSealer, sessionCookieNames } from './lib/session.ts';
import { errorHandler } from './middleware/errors.ts';
import { requestLog } from './middleware/request-log.ts';
import { jsonBody } from './middleware/body.ts';
import { authenticate } from './middleware/auth.ts';
import { localHostGuard, originGuard } from './middleware/host-origin.ts';
import { DEFAULT_RATE_LIMITS, rateLimits, type RateLimits } from './middleware/rate-limit.ts';
import type { Deps } from './routes/deps.ts';
import { healthRoutes } from './routes/health/index.ts';
import { authRoutes } from './routes/auth/index.ts';
import { meRoutes } from './routes/me/index.ts';
import { tokenRoutes } from './routes/tokens/index.ts';
import { teamRoutes } from './routes/teams/index.ts';
import { memberRoutes } from './routes/members/index.ts';
import { invitationRoutes } from './routes/invitations/index.ts';
import { appRoutes } from './routes/apps/index.ts';
import { envRoutes } from './routes/env/index.ts';
import { auditRoutes } from './routes/audit/index.ts';
import { deploymentEventRoutes } from './routes/deployments/events.ts';
import { deploymentRoutes } from './routes/deployments/index.ts';
import { githubRoutes } from './routes/github/index.ts';
import { githubInstallRoutes } from './routes/github/install.ts';
import { webhookRoutes } from './routes/webhooks/index.ts';
import { WebhookGate } from './routes/webhooks/intake.ts';
import { billingRoutes } from './routes/billing/index.ts';
import { usageRoutes } from './routes/usage/index.ts';
import { notificationRoutes } from './routes/notifications/index.ts';
import { domainRoutes } from './routes/domains/index.ts';
import { spa } from './routes/spa.ts';
import { CacheNode } from './lib/cache.ts';
import { cacheRouteMatches } from './lib/route-match-cache.ts';
import { appsDomainEdge, type AppsDomainEdge } from './edge/replay.ts';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { QueueContext } from '../jobs/queues.ts';

/** Every webhook route's path starts so (see the gate in createApp). */
const WEBHOOK_PATH = /^\/webhooks(\/|$)/i;

export interface AppOptions {
  config: Config;
  knex: Knex;
  redis: Redis;
  log: Logger;
  rateLimits?: RateLimits;
  queues?: QueueContext;
  /** false: the read caches never serve (every read goes to Postgres); bench:api measures both. */
  readCache?: boolean;
}

export function createApp({ config, knex, redis, log, rateLimits: limitsConfig = DEFAULT_RATE_LIMITS, queues, readCache = true }: AppOptions): Koa {
  // Behind a proxy (production on Fly, or any https public URL) trust X-Forwarded-Proto, so Secure
  // cookies can be set, and take the client address from the one hop we trust: the rightmost
  // X-Forwarded-For entry, which the proxy appended. Entries to its left are whatever the client sent.
  const app = new Koa({ proxy: !config.isLocal || config.secureCookies, maxIpsCount: 1 });
  const sealer = new SessionSealer(config.sessionSecret, sessionCookieNames(config.secureCookies));
  const limits = rateLimits(redis, limitsConfig);
  // This instance's read caches and their invalidation subscriber; closeApp() closes it.
  const caches = new CacheNode(redis, { serve: readCache });
  cachesOf.set(app, caches);
  const deps: Deps = { config, knex, redis, sealer, limits, caches, queues: queues ?? { connection: { url: config.redisUrl, maxRetriesPerRequest: null } } };

  // An app's address under the apps domain is handed to the app by Fly's proxy (fly-replay):
  // before anything else, so such requests never reach the dashboard's routes or cookies.
  const edge = appsDomainEdge(config, knex);
  if (edge) {
    edgesOf.set(app, edge);
    app.use(async (ctx, next) => {
      if (!(await edge.handle(ctx.req, ctx.res))) return next();
      ctx.respond = false;
    });
  }
  app.use(requestLog(log));
  app.use(errorHandler(config.databaseUrl));
  // DNS rebinding (middleware/host-origin.ts): local mode answers only to its own names, health checks included.
  if (config.isLocal) app.use(localHostGuard(config));
  // Webhooks read their raw body themselves (signatures cover the exact bytes): before jsonBody.
  const gate = new WebhookGate(config.webhooks);
  gatesOf.set(app, gate);
  const webhooks = webhookRoutes(deps, gate);
  // Only requests that can match a webhook route go through its router (its routes all live
  // under /webhooks, matched case-insensitively as @koa/router does): the rest, nearly every
  // request, would pay for its dispatch and its allowedMethods() on the way back for nothing.
  const webhookDispatch = webhooks.routes();
  const webhookMethods = webhooks.allowedMethods();
  const webhookGate: typeof webhookDispatch = (ctx, next) =>
    WEBHOOK_PATH.test(ctx.path) ? webhookDispatch(ctx, () => webhookMethods(ctx as Parameters<typeof webhookMethods>[0], next)) : next();
  app.use(webhookGate);
  // After the webhooks: they are server-to-server and signed, not writes from a page.
  app.use(originGuard(config));
  app.use(jsonBody());

  const api = new Router({ prefix: '/api' });
  api.use(authenticate(sealer, caches), limits.writes());
  for (const routes of [
    meRoutes(),
    tokenRoutes(deps),
    teamRoutes(deps),
    memberRoutes(deps),
    invitationRoutes(deps),
    appRoutes(deps),
    envRoutes(deps),
    domainRoutes(deps),
    auditRoutes(),
    deploymentRoutes(deps),
    deploymentEventRoutes(deps),
    githubRoutes(deps),
    billingRoutes(deps),
    usageRoutes(deps),
    notificationRoutes(deps),
  ]) {
    // No per-router allowedMethods(): use() copies the routes into `api`, whose own allowedMethods()
    // below answers 405s for all of them; one per router added two functions to every request.
    api.use(routes.routes());
  }

  // /api first: its requests (nearly all of them) then never pass through the other routers.
  const top = [api, healthRoutes(deps), authRoutes(deps), githubInstallRoutes(deps)];
  // Every route is in place now (the webhooks' layers are matched only when a request reaches them).
  for (const router of [...top, webhooks]) cacheRouteMatches(router);
  for (const router of top) {
    app.use(router.routes());
    app.use(router.allowedMethods());
  }
  app.use(spa());
  routersOf.set(app, [...top, webhooks]);
  return app;
}

const routersOf = new WeakMap<Koa, Router[]>();
const edgesOf = new WeakMap<Koa, AppsDomainEdge>();

/**
 * Upgrade (WebSocket) requests for an app's address get their fly-replay answer here: Koa never
 * sees upgrades, and without a listener Node would close them. Other upgrades are refused.
 */
export function attachUpgrades(app: Koa, server: Server): void {
  const edge = edgesOf.get(app);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    void (edge?.upgrade(req, socket) ?? Promise.resolve(false)).then(
      (handled) => {
        if (!handled) socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      },
      () => socket.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'),
    );
  });
}
const cachesOf = new WeakMap<Koa, CacheNode>();
const gatesOf = new WeakMap<Koa, WebhookGate>();

/** The app's count of webhook bodies being read (tests hold requests open and look). */
export function appWebhookGate(app: Koa): WebhookGate | undefined {
  return gatesOf.get(app);
}

/** The app's read caches (tests look inside). */
export function appCaches(app: Koa): CacheNode | undefined {
  return cachesOf.get(app);
}

/** Releases what createApp opened besides the HTTP server: the cache invalidation subscriber. */
export async function closeApp(app: Koa): Promise<void> {
  await cachesOf.get(app)?.close();
}

/** Every route the app serves, as "METHOD /path" (HEAD omitted), for the authorization table test. */
export function listRoutes(app: Koa): string[] {
  const routes = new Set<string>();
  for (const router of routersOf.get(app) ?? []) {
    for (const layer of router.stack) {
      for (const method of layer.methods) {
        if (method !== 'HEAD') routes.add(`${method} ${layer.path}`);
      }
    }
  }
  return [...routes].sort();
}
