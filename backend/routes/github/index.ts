// The repository picker and the team's GitHub connections: what the dashboard's create-app form
// and team settings read. Repositories come from what Rhone keeps in sync (installation webhooks);
// branches are read from GitHub with a token for that one repository.
import Router from '@koa/router';
import type { Context } from 'koa';
import { teamAccess } from '../../queries/access.ts';
import { findTeamRepo, listBranches, listInstallations, listTeamRepos } from '../../commands/github-installations.ts';
import { authorize, can } from '../../policies/index.ts';
import { auth, requireActor } from '../../middleware/auth.ts';
import { inputOf, validate } from '../../middleware/validate.ts';
import { presentBranch, presentGithubRepo, presentInstallation } from '../../presenters/index.ts';
import { githubAppConfigured } from '../../providers/github/index.ts';
import type { Deps } from '../deps.ts';
import * as schema from './schema.ts';

export function githubRoutes({ config }: Deps): Router {
  const router = new Router();

  router.get('/teams/:team/github/installations', auth(), validate(schema.teamParams), async (ctx: Context) => {
    const { team, role } = await teamAccess(requireActor(ctx), inputOf(ctx, schema.teamParams).params.team);
    authorize(role, 'github:read');
    const configured = githubAppConfigured(config);
    ctx.body = {
      configured,
      // A plain link: the api sends the browser on to the App's install page on GitHub.
      installUrl: configured && can(role, 'github:install') ? `/github/install?team=${encodeURIComponent(team.slug)}` : null,
      items: (await listInstallations(team)).map(({ installation, repositoryCount }) => presentInstallation(installation, repositoryCount)),
    };
  });

  router.get('/teams/:team/github/repos', auth(), validate(schema.listRepos), async (ctx: Context) => {
    const { params, query } = inputOf(ctx, schema.listRepos);
    const { team, role } = await teamAccess(requireActor(ctx), params.team);
    authorize(role, 'github:read');
    const page = await listTeamRepos(team, query);
    ctx.body = { items: page.items.map(presentGithubRepo), next: page.next };
  });

  router.get('/teams/:team/github/repos/:owner/:repo/branches', auth(), validate(schema.listBranches), async (ctx: Context) => {
    const { params } = inputOf(ctx, schema.listBranches);
    const { team, role } = await teamAccess(requireActor(ctx), params.team);
    authorize(role, 'github:read');
    const repo = await findTeamRepo(team, `${params.owner}/${params.repo}`);
    const branches = await listBranches(config, repo);
    ctx.body = { repo: repo.fullName, defaultBranch: repo.defaultBranch, items: branches.map((b) => presentBranch(b, repo.defaultBranch)) };
  });

  return router;
}
