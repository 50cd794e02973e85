// Where a deployment's code comes from, and with which credentials. A git URL is fetched as it is;
// a GitHub repository through the GitHub App, with an installation token minted for that one
// repository (contents: read) just before the fetch. The token goes to git as a credential
// (git-process.ts hands it over through the environment): never into a URL, argv or .git/config.
import type { Config } from '../config.ts';
import type { App, AppSource } from '../models/index.ts';
import { githubAppConfigured, githubStatus, githubTransient, githubWebUrl, GithubNotConfiguredError, mintToken } from '../providers/github/index.ts';
import { SourceError } from '../source/git.ts';

export interface ResolvedSource {
  url: string;
  credentials?: { username: string; password: string };
  /**
   * A user's URL in production: git may reach only public addresses, pinned (remote-guard.ts).
   * The GitHub App's URL is the operator's setting and is not checked.
   */
  publicOnly: boolean;
}

export async function resolveSource(config: Config, source: AppSource): Promise<ResolvedSource> {
  if (source.type === 'git') return { url: source.url, publicOnly: !config.isLocal };
  if (!githubAppConfigured(config)) throw new GithubNotConfiguredError();
  let token: string;
  try {
    token = await mintToken(config, source.installationId, { contents: 'read' }, { fullName: source.repo, id: source.repositoryId });
  } catch (err) {
    if (githubTransient(err)) throw new SourceError('unreachable', `GitHub could not be reached for access to ${source.repo}; trying again.`);
    throw new SourceError(
      'auth_failed',
      `GitHub refused Rhone access to ${source.repo} (HTTP ${githubStatus(err)}): the Rhone GitHub App may have been uninstalled or suspended, or the repository removed from it. Reinstall the App or pick the repository again.`,
    );
  }
  return { url: `${githubWebUrl(config)}/${source.repo}.git`, credentials: { username: 'x-access-token', password: token }, publicOnly: false };
}

const PROBLEMS: Record<NonNullable<App['sourceProblem']>, (repo: string) => string> = {
  installation_deleted: (repo) =>
    `The Rhone GitHub App was uninstalled from the account that owns ${repo}, so Rhone can no longer reach the repository and pushes do not deploy. Install the App again and pick the repository in the app's settings.`,
  installation_suspended: (repo) =>
    `The Rhone GitHub App installation that gives access to ${repo} is suspended on GitHub, so pushes do not deploy. Unsuspend it in the account's GitHub settings.`,
  repository_removed: (repo) =>
    `${repo} was removed from the Rhone GitHub App installation (or deleted), so Rhone can no longer reach it and pushes do not deploy. Add the repository to the installation on GitHub again, or pick another one.`,
};

/** Why the app's source cannot be reached, in words the user can act on; null when it can. */
export function describeSourceProblem(app: Pick<App, 'source' | 'sourceProblem'>): string | null {
  if (!app.sourceProblem || app.source.type !== 'github') return null;
  return PROBLEMS[app.sourceProblem](app.source.repo);
}
