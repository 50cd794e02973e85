import Router from '@koa/router';
import type { Context } from 'koa';
import { signIn } from '../../commands/users.ts';
import { endSession, startSession } from '../../lib/session.ts';
import { NotFoundError } from '../../lib/errors.ts';
import { authenticate, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { presentUser } from '../../presenters/index.ts';
import type { Deps } from '../deps.ts';
import { devLogin } from './schema.ts';
import { githubOAuth } from './github.ts';

export function authRoutes(deps: Deps): Router {
  const { config, knex, sealer, limits } = deps;
  const router = new Router({ prefix: '/auth' });

  // What the sign-in page offers: the GitHub button when the App's OAuth credentials are set, and
  // the login-name form in local mode.
  router.get('/providers', (ctx: Context) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { dev: config.isLocal, github: Boolean(config.github.clientId && config.github.clientSecret) };
  });

  // Local mode only: sign in as any login, no password. Production has no such route.
  router.post('/dev', limits.signIn(), validate(devLogin), async (ctx: Context) => {
    if (!config.isLocal) throw new NotFoundError('Route');
    const { body } = inputOf(ctx, devLogin);
    const { user, created } = await signIn(knex, { login: body.login });
    await startSession(ctx, knex, config, sealer, user.id);
    ctx.status = created ? 201 : 200;
    ctx.body = presentUser(user);
  });

  router.post('/logout', authenticate(sealer), async (ctx: Context) => {
    const actor = requireActor(ctx);
    await endSession(ctx, knex, config, actor.sessionId);
    ctx.status = 204;
  });

  githubOAuth(router, deps);
  return router;
}
