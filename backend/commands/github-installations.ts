// GitHub App installations as Rhone keeps them: which team an installation belongs to, which
// repositories it grants, and what that means for the apps that deploy from it. GitHub's view is
// read again whenever something changes (webhooks arrive in any order; the state read now does
// not), and written in one transaction that also marks or clears the apps' source problems.
import type { Knex } from 'knex';
import { App, GithubInstallation, GithubInstallationRepository, type AppSource, type SourceProblem, type Team } from '../models/index.ts';
import { AppError, ConflictError, ForbiddenError, NotFoundError } from '../lib/errors.ts';
import type { Actor } from '../middleware/auth.ts';
import type { Config } from '../config.ts';
import { decodeCursor, toPage } from '../lib/pagination.ts';
import { transaction } from '../lib/transaction.ts';
import {
  allPages,
  githubApp,
  githubStatus,
  githubTransient,
  githubUnavailable,
  installationClient,
  repoClient,
  type GithubClient,
} from '../providers/github/index.ts';
import { recordAudit } from './audit.ts';
import { ensureMayConnect } from './github-installation-access.ts';

export interface RepoState {
  id: number;
  fullName: string;
  private: boolean;
  defaultBranch: string | null;
}

export interface InstallationState {
  id: number;
  deleted: boolean;
  account?: { login: string; type: string; id?: number };
  repositorySelection?: string | null;
  suspendedAt?: string | null;
  /** Null when they could not be read (a suspended installation lists nothing): kept as they are. */
  repositories: RepoState[] | null;
  /** Who installed it, from installation.created's sender; left as stored when undefined. */
  installerGithubId?: number;
}

interface GhInstallation {
  id: number;
  account: { login?: string; slug?: string; type?: string; id?: number } | null;
  repository_selection?: string;
  suspended_at?: string | null;
}

interface GhRepo {
  id: number;
  full_name: string;
  private: boolean;
  default_branch?: string;
}

function accountOf(installation: GhInstallation): { login: string; type: string; id?: number } {
  return {
    login: installation.account?.login ?? installation.account?.slug ?? 'unknown',
    type: installation.account?.type ?? 'User',
    id: installation.account?.id,
  };
}

/** The installation as GitHub sees it now; uninstalled when GitHub no longer knows it. */
export async function fetchInstallation(config: Config, id: number): Promise<InstallationState> {
  let data: GhInstallation;
  try {
    ({ data } = (await githubApp(config).octokit.request('GET /app/installations/{installation_id}', { installation_id: id })) as { data: GhInstallation });
  } catch (err) {
    if (githubStatus(err) === 404) return { id, deleted: true, repositories: [] };
    throw err;
  }
  const state: InstallationState = {
    id,
    deleted: false,
    account: accountOf(data),
    repositorySelection: data.repository_selection ?? null,
    suspendedAt: data.suspended_at ?? null,
    repositories: null,
  };
  if (state.suspendedAt) return state;
  const client = await installationClient(config, id);
  const repos = await allPages(client, '/installation/repositories', (page) => (page as { repositories: GhRepo[] }).repositories);
  state.repositories = repos.map((r) => ({ id: r.id, fullName: r.full_name, private: r.private, defaultBranch: r.default_branch ?? null }));
  return state;
}

async function writeRepositories(trx: Knex.Transaction, state: InstallationState): Promise<void> {
  const repos = state.deleted ? [] : state.repositories;
  if (repos === null) return;
  await trx('github_installation_repositories')
    .where({ installationId: state.id })
    .whereNotIn(
      'repositoryId',
      repos.map((r) => r.id),
    )
    .delete();
  if (repos.length === 0) return;
  await trx('github_installation_repositories')
    .insert(repos.map((r) => ({ installationId: state.id, repositoryId: r.id, fullName: r.fullName, private: r.private, defaultBranch: r.defaultBranch })))
    .onConflict(['installationId', 'repositoryId'])
    .merge(['fullName', 'private', 'defaultBranch']);
}

type GithubSource = Extract<AppSource, { type: 'github' }>;

function sameRepo(source: GithubSource, repo: RepoState): boolean {
  return source.repositoryId ? source.repositoryId === repo.id : source.repo.toLowerCase() === repo.fullName.toLowerCase();
}

/** Marks or clears the source problem of every app deploying from the installation, and follows renames. */
async function reconcileApps(trx: Knex.Transaction, state: InstallationState, actor: Actor | null): Promise<void> {
  const apps = await App.query(trx).whereRaw(`source->>'type' = 'github' and (source->>'installationId')::bigint = ?`, [state.id]).forUpdate();
  for (const app of apps) {
    const source = app.source as GithubSource;
    const found = state.repositories?.find((r) => sameRepo(source, r));
    let problem: SourceProblem | null;
    if (state.deleted) problem = 'installation_deleted';
    else if (state.suspendedAt) problem = 'installation_suspended';
    else if (state.repositories === null) problem = app.sourceProblem;
    else problem = found ? null : 'repository_removed';
    const renamed = found && (found.fullName !== source.repo || found.id !== source.repositoryId);
    if (problem === app.sourceProblem && !renamed) continue;
    const patch: Partial<App> = { sourceProblem: problem };
    if (renamed) patch.source = { ...source, repo: found.fullName, repositoryId: found.id };
    await App.query(trx).patch(patch).where({ id: app.id });
    const action = problem === app.sourceProblem ? 'app.source_renamed' : problem ? 'app.source_lost' : 'app.source_restored';
    await recordAudit(trx, {
      teamId: app.teamId,
      actor,
      action,
      subjectType: 'app',
      subjectId: app.id,
      data: { slug: app.slug, repo: patch.source ? (patch.source as GithubSource).repo : source.repo, problem },
    });
  }
}

/**
 * Writes the installation as `state` says: its row, its repositories, its apps' source problems.
 * With `link`, it also becomes the team's, unless it already is another team's (409).
 */
export async function storeInstallation(knex: Knex, state: InstallationState, link?: { team: Team; actor: Actor }): Promise<void> {
  await transaction(knex, async (trx) => {
    const now = new Date();
    if (state.account) {
      const fields = {
        accountLogin: state.account.login,
        accountType: state.account.type,
        repositorySelection: state.repositorySelection ?? null,
        suspendedAt: state.suspendedAt ? new Date(state.suspendedAt) : null,
        deletedAt: state.deleted ? now : null,
        updatedAt: now,
        ...(state.installerGithubId !== undefined ? { installerGithubId: state.installerGithubId } : {}),
      };
      await trx('github_installations')
        .insert({ id: state.id, ...fields })
        .onConflict('id')
        .merge(Object.keys(fields));
    } else if (state.deleted) {
      await trx('github_installations').where({ id: state.id }).whereNull('deletedAt').update({ deletedAt: now, updatedAt: now });
    }
    if (link) {
      const linked = await trx('github_installations')
        .where({ id: state.id })
        .where((q) => q.whereNull('teamId').orWhere('teamId', link.team.id))
        .update({ teamId: link.team.id });
      if (linked === 0) {
        throw new ConflictError(
          'installation_taken',
          `The GitHub account ${state.account?.login ?? ''} is already connected to another Rhone team. Deploy its repositories from that team, or uninstall the Rhone GitHub App there first.`,
        );
      }
      await recordAudit(trx, {
        teamId: link.team.id,
        actor: link.actor,
        action: 'github.installation_linked',
        subjectType: 'github_installation',
        subjectId: String(state.id),
        data: { account: state.account?.login },
      });
    }
    await writeRepositories(trx, state);
    await reconcileApps(trx, state, link?.actor ?? null);
  });
}

/** The team's installations (not uninstalled ones), each with how many repositories it grants. */
export async function listInstallations(team: Team): Promise<{ installation: GithubInstallation; repositoryCount: number }[]> {
  const rows = await GithubInstallation.query()
    .where({ teamId: team.id })
    .whereNull('deletedAt')
    .select('github_installations.*', GithubInstallation.relatedQuery('repositories').count().as('repositoryCount'))
    .orderBy('accountLogin');
  return rows.map((row) => {
    const { repositoryCount, ...installation } = row as GithubInstallation & { repositoryCount: string | number };
    return { installation: Object.assign(new GithubInstallation(), installation), repositoryCount: Number(repositoryCount) };
  });
}

type TeamRepo = GithubInstallationRepository & { suspended: boolean };

function teamRepos(team: Team) {
  return GithubInstallationRepository.query()
    .join('github_installations as gi', 'gi.id', 'github_installation_repositories.installation_id')
    .where('gi.team_id', team.id)
    .whereNull('gi.deleted_at')
    .select('github_installation_repositories.*', GithubInstallationRepository.raw('gi.suspended_at is not null as suspended'));
}

/** The repositories of the team's installations, by name; `q` narrows to names containing it. */
export async function listTeamRepos(team: Team, { limit, cursor, q }: { limit: number; cursor?: string; q?: string }) {
  const after = decodeCursor(cursor, 1);
  const query = teamRepos(team)
    .orderBy('github_installation_repositories.full_name')
    .limit(limit + 1);
  if (after) query.where('github_installation_repositories.full_name', '>', String(after[0]));
  if (q) query.where('github_installation_repositories.full_name', 'ilike', `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
  return toPage((await query) as TeamRepo[], limit, (r) => [r.fullName]);
}

/** One repository of the team's installations, by "owner/name" (GitHub's names ignore case); 404 otherwise. */
export async function findTeamRepo(team: Team, fullName: string): Promise<TeamRepo> {
  const row = (await teamRepos(team).whereRaw('lower(github_installation_repositories.full_name) = lower(?)', [fullName]).first()) as TeamRepo | undefined;
  if (!row) throw new NotFoundError(`Repository "${fullName}" of this team's GitHub installations`);
  return row;
}

interface GhBranch {
  name: string;
  commit: { sha: string };
  protected?: boolean;
}

/** The repository's branches, read from GitHub with a token for that repository only. */
export async function listBranches(config: Config, repo: TeamRepo): Promise<GhBranch[]> {
  if (repo.suspended) {
    throw new ConflictError(
      'installation_suspended',
      `The Rhone GitHub App installation that gives access to ${repo.fullName} is suspended; unsuspend it on GitHub first.`,
    );
  }
  try {
    const client = await repoClient(config, repo.installationId, { fullName: repo.fullName, id: repo.repositoryId }, { metadata: 'read' });
    const [owner, name] = repo.fullName.split('/').map(encodeURIComponent);
    return await allPages(client, `/repos/${owner}/${name}/branches`, (page) => page as GhBranch[]);
  } catch (err) {
    if (err instanceof AppError) throw err;
    if (githubTransient(err)) throw githubUnavailable(err, `listing the branches of ${repo.fullName}`);
    throw new NotFoundError(`Repository "${repo.fullName}" (GitHub no longer gives Rhone access to it)`);
  }
}

/**
 * Connects the installation to the team, after checking with the user's own GitHub token (`user`)
 * that it is their GitHub account, that it can access the installation (an installation id in a URL
 * can be forged), and that the installation is theirs to connect: every member of an organization
 * sees its installations, so seeing one is not enough (see ensureMayConnect). Nothing is written
 * when a check fails.
 */
export async function connectInstallation(
  knex: Knex,
  config: Config,
  actor: Actor,
  team: Team,
  installationId: number,
  user: GithubClient,
): Promise<InstallationState> {
  let installations: { id: number }[];
  let me: { id: number; login: string };
  try {
    ({ data: me } = (await user.request('GET /user')) as { data: { id: number; login: string } });
    if (actor.user.githubId && Number(actor.user.githubId) !== Number(me.id)) {
      throw new ForbiddenError(
        `GitHub says you are ${me.login} there, but you are signed in to Rhone as ${actor.user.login}. Sign in to GitHub as ${actor.user.login} and start again; nothing was connected.`,
      );
    }
    installations = await allPages(user, '/user/installations', (page) => (page as { installations: { id: number }[] }).installations);
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw githubUnavailable(err, 'checking your access to the installation');
  }
  if (!installations.some((i) => i.id === installationId)) {
    throw new ForbiddenError(
      `Your GitHub account cannot access installation ${installationId} of the Rhone GitHub App, so it was not connected to ${team.slug}. Install the App from your team's settings on an account you manage.`,
    );
  }
  let state: InstallationState;
  try {
    state = await fetchInstallation(config, installationId);
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw githubUnavailable(err, 'reading the installation');
  }
  if (state.deleted) throw new NotFoundError(`Installation ${installationId} of the Rhone GitHub App`);
  const stored = await GithubInstallation.query(knex).findById(installationId);
  await ensureMayConnect(user, me, state, stored?.installerGithubId ?? null, team);
  await storeInstallation(knex, state, { team, actor });
  return state;
}
