// Where a deployment's code comes from, and with which credentials. A git URL is fetched as it
// is; a GitHub repository through the GitHub App, with a token minted for that one repository just
// before the fetch (the GitHub issue adds the minting).
import type { Config } from '../config.ts';
import { AppError } from '../lib/errors.ts';
import type { AppSource } from '../models/index.ts';

export interface ResolvedSource {
  url: string;
  credentials?: { username: string; password: string };
}

export type GithubTokenMinter = (installationId: number, repo: string) => Promise<string>;

let mintGithubToken: GithubTokenMinter | undefined;

/** The GitHub integration registers how to mint installation tokens. */
export function setGithubTokenMinter(minter: GithubTokenMinter | undefined): void {
  mintGithubToken = minter;
}

export async function resolveSource(config: Config, source: AppSource): Promise<ResolvedSource> {
  if (source.type === 'git') return { url: source.url };
  if (!mintGithubToken) {
    throw new AppError(
      422,
      'github_not_configured',
      'This app deploys from GitHub, but the Rhone GitHub App is not set up here. Set GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY, or use a git URL as the source.',
    );
  }
  const base = config.github.apiUrl === 'https://api.github.com' ? 'https://github.com' : config.github.apiUrl.replace(/\/api\/v3\/?$/, '');
  const token = await mintGithubToken(source.installationId, source.repo);
  return { url: `${base}/${source.repo}.git`, credentials: { username: 'x-access-token', password: token } };
}
