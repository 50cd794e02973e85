import Router from '@koa/router';
import type { Deps } from '../deps.ts';

export function healthRoutes({ knex, redis }: Deps): Router {
  const router = new Router();
  // Up: the process answers. Used by Fly's HTTP check.
  router.get('/healthz', (ctx) => {
    ctx.body = { ok: true };
  });
  // Ready: its dependencies answer too.
  router.get('/readyz', async (ctx) => {
    const check = async (fn: () => Promise<unknown>) => {
      try {
        await Promise.race([fn(), new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 2000))]);
        return 'ok';
      } catch (err) {
        return `unavailable: ${(err as Error).message}`;
      }
    };
    const [postgres, redisState] = await Promise.all([check(() => knex.raw('select 1')), check(() => redis.ping())]);
    const ok = postgres === 'ok' && redisState === 'ok';
    ctx.status = ok ? 200 : 503;
    ctx.body = { ok, postgres, redis: redisState };
  });
  return router;
}
