// Installing the Rhone GitHub App for a team, in the browser:
//   GET /github/install?team=acme  → GitHub's install page for the App (state in a sealed cookie)
//   GET /github/setup?installation_id=…&setup_action=install&state=…   (GitHub's Setup URL)
//       → GitHub's authorize page, to get the user's own token (back to the same URL)
//   GET /github/setup?code=…&state=…  → checks that the token's user can access the installation,
//       then records it for the team and returns to the dashboard.
// The App's settings on GitHub: Setup URL and a Callback URL both `${RHONE_PUBLIC_URL}/github/setup`
// (next to the sign-in callback), "Request user authorization during installation" off.
import Router from '@koa/router';
import type { Context, Next } from 'koa';
import { teamAccess } from '../../queries/access.ts';
import { connectInstallation } from '../../commands/github-installations.ts';
import { AppError } from '../../lib/errors.ts';
import { htmlPage } from '../../lib/html.ts';
import { randomToken, safeEqual } from '../../lib/crypto.ts';
import { stateCookie } from '../../lib/state-cookie.ts';
import { authenticate, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { authorize } from '../../policies/index.ts';
import { githubApp, githubErrorForLog, githubUnavailable, userClient } from '../../providers/github/index.ts';
import type { Deps } from '../deps.ts';
import * as schema from './schema.ts';

interface InstallFlow {
  nonce: string;
  team: string;
  userId: string;
  /** Set once GitHub's install page sent the browser back with it. */
  installationId?: number;
}

const TITLES: Record<number, string> = {
  400: 'This request is not valid',
  401: 'Sign in to Rhone first',
  403: 'GitHub account not connected',
  404: 'Not found',
  409: 'Already connected elsewhere',
  502: 'GitHub did not answer',
  503: 'GitHub is not set up here',
};

const START_AGAIN: [string, string][] = [['/', 'Back to Rhone']];

function page(ctx: Context, status: number, title: string, message: string): void {
  htmlPage(ctx, status, title, message, START_AGAIN);
}

/** These routes are visited by a browser: errors are pages, not JSON. */
function htmlErrors() {
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      await next();
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      page(ctx, err.status, TITLES[err.status] ?? 'Something went wrong', err.message);
    }
  };
}

export function githubInstallRoutes({ config, knex, sealer, caches, limits }: Deps): Router {
  const router = new Router({ prefix: '/github' });
  const setupUrl = `${config.publicUrl}/github/setup`;
  const flow = stateCookie<InstallFlow>(config, { name: 'rhone_github_install', path: '/github', purpose: 'github-install', ttlMs: 30 * 60_000 });
  router.use(htmlErrors(), authenticate(sealer, caches));

  router.get('/install', limits.signIn(), validate(schema.install), async (ctx: Context) => {
    const actor = requireActor(ctx);
    const { team, role } = await teamAccess(actor, inputOf(ctx, schema.install).query.team);
    authorize(role, 'github:install');
    const app = githubApp(config);
    const nonce = randomToken(24);
    let url: string;
    try {
      url = await app.getInstallationUrl({ state: nonce });
    } catch (err) {
      throw githubUnavailable(err, "looking up the App's install page");
    }
    flow.set(ctx, { nonce, team: team.slug, userId: actor.user.id });
    ctx.redirect(url);
  });

  router.get('/setup', limits.signIn(), validate(schema.setup), async (ctx: Context) => {
    const { query } = inputOf(ctx, schema.setup);
    if (query.setup_action === 'request') {
      // Nothing is installed until an owner approves, and nothing is connected from this visit: the
      // flow ends here, so its state cannot be carried on to a connection.
      flow.take(ctx);
      return page(
        ctx,
        200,
        'Installation requested',
        "An owner of the GitHub organization was asked to approve the Rhone GitHub App. Once they have, connect it from your team's settings in Rhone.",
      );
    }
    const actor = requireActor(ctx);
    const started = flow.take(ctx);
    if (!started || started.value.userId !== actor.user.id || !query.state || !safeEqual(started.value.nonce, query.state)) {
      // Settings changed on GitHub's side send the browser here too, outside any flow of ours.
      if (query.setup_action === 'update' && !query.code)
        return page(ctx, 200, 'GitHub saved your changes', 'Rhone keeps the list of repositories in sync with GitHub on its own.');
      return page(
        ctx,
        400,
        'This installation link is not valid',
        "It was already used, or it came from another browser or account. Start again from your team's settings in Rhone; nothing was connected.",
      );
    }
    if (started.expired)
      return page(
        ctx,
        400,
        'This installation link has expired',
        "Installing the App must be finished within 30 minutes. Start again from your team's settings in Rhone.",
      );
    if (query.error)
      return page(
        ctx,
        403,
        'GitHub did not confirm your account',
        'Rhone checks with GitHub that your account can access an installation before connecting it, and GitHub did not allow that check. Nothing was connected.',
      );
    const { team, role } = await teamAccess(actor, started.value.team);
    authorize(role, 'github:install');
    if (!config.github.clientId || !config.github.clientSecret) {
      throw new AppError(
        503,
        'github_not_configured',
        "Connecting an installation needs the App's OAuth credentials: set GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET.",
      );
    }
    const app = githubApp(config);

    if (!query.code) {
      if (!query.installation_id) return page(ctx, 400, 'GitHub did not say which installation', "Start again from your team's settings in Rhone.");
      // Back from the install page. Whose installation it is is asked of GitHub with the user's own token.
      const nonce = randomToken(24);
      flow.set(ctx, { ...started.value, nonce, installationId: query.installation_id });
      return ctx.redirect(app.oauth.getWebFlowAuthorizationUrl({ state: nonce, redirectUrl: setupUrl }).url);
    }
    if (!started.value.installationId) return page(ctx, 400, 'This installation link is not valid', "Start again from your team's settings in Rhone.");
    let token: string;
    try {
      ({
        authentication: { token },
      } = await app.oauth.createToken({ code: query.code, redirectUrl: setupUrl }));
    } catch (err) {
      ctx.state.log?.warn({ err: githubErrorForLog(err) }, 'GitHub code exchange failed (installation)');
      return page(ctx, 400, 'GitHub did not accept this confirmation', "The code was expired or already used. Start again from your team's settings in Rhone.");
    }
    await connectInstallation(knex, config, actor, team, started.value.installationId, userClient(config, token));
    ctx.redirect(`/teams/${encodeURIComponent(team.slug)}?github=connected`);
  });

  return router;
}
