// Sign in with GitHub (production): the OAuth web flow of the GitHub App's client credentials.
// The state travels in a short-lived sealed cookie and is single-use; a denied, expired or replayed
// callback gets a page that says so, and no session.
import type Router from '@koa/router';
import type { Context } from 'koa';
import { exchangeWebFlowCode, getWebFlowAuthorizationUrl } from '@octokit/oauth-methods';
import { request as octokitRequest } from '@octokit/request';
import { signIn } from '../../commands/users.ts';
import { randomToken, safeEqual } from '../../lib/crypto.ts';
import { NotFoundError } from '../../lib/errors.ts';
import { startSession } from '../../lib/session.ts';
import { htmlPage } from '../../lib/html.ts';
import { stateCookie } from '../../lib/state-cookie.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import type { Deps } from '../deps.ts';
import { githubCallback } from './schema.ts';

function page(ctx: Context, status: number, title: string, message: string): void {
  htmlPage(ctx, status, title, message, [
    ['/auth/github', 'Try signing in again'],
    ['/', 'Back to Rhone'],
  ]);
}

export function githubOAuth(router: Router, { config, knex, sealer, limits }: Deps): void {
  const stateCookieOf = stateCookie<{ state: string }>(config, {
    name: 'rhone_oauth_state',
    path: '/auth/github',
    purpose: 'oauth-state',
    ttlMs: 10 * 60 * 1000,
  });
  const request = octokitRequest.defaults({ baseUrl: config.github.apiUrl });
  const redirectUrl = `${config.publicUrl}/auth/github/callback`;
  const enabled = () => Boolean(config.github.clientId && config.github.clientSecret);

  router.get('/github', limits.signIn(), (ctx: Context) => {
    if (!enabled()) {
      if (config.isLocal)
        return page(
          ctx,
          404,
          'GitHub sign-in is not set up',
          'Local mode signs in with a login name instead: use the form on the sign-in page, or set GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET.',
        );
      throw new NotFoundError('Route');
    }
    const state = randomToken(24);
    stateCookieOf.set(ctx, { state });
    const { url } = getWebFlowAuthorizationUrl({ clientType: 'github-app', clientId: config.github.clientId!, redirectUrl, state, request });
    ctx.redirect(url);
  });

  router.get('/github/callback', limits.signIn(), validate(githubCallback), async (ctx: Context) => {
    if (!enabled()) throw new NotFoundError('Route');
    const { query } = inputOf(ctx, githubCallback);
    const expected = stateCookieOf.take(ctx);
    if (query.error) return page(ctx, 403, 'Sign-in was cancelled', 'GitHub did not grant access, so you are not signed in.');
    if (!expected || !query.state || !query.code || !safeEqual(expected.value.state, query.state)) {
      return page(ctx, 400, 'This sign-in link is not valid', 'It was already used, or it came from another browser. Start signing in again.');
    }
    if (expected.expired) return page(ctx, 400, 'This sign-in link has expired', 'Sign-in links last ten minutes. Start signing in again.');

    let token: string;
    try {
      const { authentication } = await exchangeWebFlowCode({
        clientType: 'github-app',
        clientId: config.github.clientId!,
        clientSecret: config.github.clientSecret!,
        code: query.code,
        redirectUrl,
        request,
      });
      token = authentication.token;
    } catch (err) {
      ctx.state.log?.warn({ err: { message: (err as Error).message } }, 'GitHub code exchange failed');
      return page(ctx, 400, 'GitHub did not accept this sign-in', 'The code was expired or already used. Start signing in again.');
    }
    const headers = { authorization: `token ${token}` };
    let profile: { login: string; id: number | bigint; name?: string | null; avatar_url?: string | null };
    try {
      ({ data: profile } = await request('GET /user', { headers }));
    } catch (err) {
      ctx.state.log?.warn({ err: { message: (err as Error).message, status: (err as { status?: number }).status } }, 'GitHub profile request failed');
      return page(ctx, 502, 'GitHub did not answer', 'Rhone could not read your GitHub profile. Try signing in again in a moment.');
    }
    const { data: emails } = await request('GET /user/emails', { headers }).catch(() => ({
      data: [] as { email: string; primary: boolean; verified: boolean }[],
    }));
    const primary = emails.find((e) => e.primary && e.verified)?.email ?? null;
    const { user } = await signIn(knex, {
      login: profile.login,
      githubId: Number(profile.id),
      name: profile.name ?? null,
      email: primary,
      avatarUrl: profile.avatar_url ?? null,
    });
    await startSession(ctx, knex, config, sealer, user.id);
    ctx.redirect('/');
  });
}
