// Sign in with GitHub (production): the OAuth web flow of the GitHub App's client credentials.
// The state travels in a short-lived sealed cookie and is single-use; a denied, expired or replayed
// callback gets a page that says so, and no session.
import type Router from '@koa/router';
import type { Context } from 'koa';
import { exchangeWebFlowCode, getWebFlowAuthorizationUrl } from '@octokit/oauth-methods';
import { request as octokitRequest } from '@octokit/request';
import { signIn } from '../../commands/users.ts';
import { decrypt, deriveKey, encrypt, randomToken, safeEqual } from '../../lib/crypto.ts';
import { NotFoundError } from '../../lib/errors.ts';
import { startSession } from '../../lib/session.ts';
import { escapeHtml } from '../../lib/html.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import type { Deps } from '../deps.ts';
import { githubCallback } from './schema.ts';

const STATE_COOKIE = 'rhone_oauth_state';
const STATE_TTL_MS = 10 * 60 * 1000;

function page(ctx: Context, status: number, title: string, message: string): void {
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = `<!doctype html><meta charset="utf-8"><title>${escapeHtml(title)} · Rhone</title>
<body style="font-family:system-ui;max-width:36rem;margin:4rem auto;padding:0 1rem">
<h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p><p><a href="/auth/github">Try signing in again</a> · <a href="/">Back to Rhone</a></p></body>`;
}

export function githubOAuth(router: Router, { config, knex, sealer, limits }: Deps): void {
  const stateKeys = [{ id: 'o1', key: deriveKey(config.sessionSecret, 'oauth-state') }];
  const request = octokitRequest.defaults({ baseUrl: config.github.apiUrl });
  const redirectUrl = `${config.publicUrl}/auth/github/callback`;
  const enabled = () => Boolean(config.github.clientId && config.github.clientSecret);

  router.get('/github', limits.signIn(), (ctx: Context) => {
    if (!enabled()) {
      if (config.isLocal) return page(ctx, 404, 'GitHub sign-in is not set up', 'Local mode signs in with a login name instead: use the form on the sign-in page, or set GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET.');
      throw new NotFoundError('Route');
    }
    const state = randomToken(24);
    const sealed = encrypt(JSON.stringify({ state, expiresAt: Date.now() + STATE_TTL_MS }), stateKeys, STATE_COOKIE);
    ctx.cookies.set(STATE_COOKIE, sealed.data.toString('base64url'), {
      httpOnly: true, sameSite: 'lax', secure: config.secureCookies, path: '/auth/github', maxAge: STATE_TTL_MS, overwrite: true,
    });
    const { url } = getWebFlowAuthorizationUrl({ clientType: 'github-app', clientId: config.github.clientId!, redirectUrl, state, request });
    ctx.redirect(url);
  });

  router.get('/github/callback', limits.signIn(), validate(githubCallback), async (ctx: Context) => {
    if (!enabled()) throw new NotFoundError('Route');
    const { query } = inputOf(ctx, githubCallback);
    const cookie = ctx.cookies.get(STATE_COOKIE);
    // Single use: whatever happens next, this state cannot be presented again.
    ctx.cookies.set(STATE_COOKIE, '', { path: '/auth/github', maxAge: 0, expires: new Date(0), secure: config.secureCookies, overwrite: true });
    if (query.error) return page(ctx, 403, 'Sign-in was cancelled', 'GitHub did not grant access, so you are not signed in.');
    let expected: { state: string; expiresAt: number } | null = null;
    try {
      expected = cookie ? JSON.parse(decrypt({ keyId: 'o1', data: Buffer.from(cookie, 'base64url') }, stateKeys, STATE_COOKIE).toString('utf8')) : null;
    } catch {
      expected = null;
    }
    if (!expected || !query.state || !query.code || !safeEqual(expected.state, query.state)) {
      return page(ctx, 400, 'This sign-in link is not valid', 'It was already used, or it came from another browser. Start signing in again.');
    }
    if (expected.expiresAt < Date.now()) return page(ctx, 400, 'This sign-in link has expired', 'Sign-in links last ten minutes. Start signing in again.');

    let token: string;
    try {
      const { authentication } = await exchangeWebFlowCode({
        clientType: 'github-app', clientId: config.github.clientId!, clientSecret: config.github.clientSecret!, code: query.code, redirectUrl, request,
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
    const { data: emails } = await request('GET /user/emails', { headers }).catch(() => ({ data: [] as { email: string; primary: boolean; verified: boolean }[] }));
    const primary = emails.find((e) => e.primary && e.verified)?.email ?? null;
    const { user } = await signIn(knex, {
      login: profile.login, githubId: Number(profile.id), name: profile.name ?? null, email: primary, avatarUrl: profile.avatar_url ?? null,
    });
    await startSession(ctx, knex, config, sealer, user.id);
    ctx.redirect('/');
  });
}
