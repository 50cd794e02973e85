// Whether a GitHub user may connect an installation of the Rhone GitHub App to a Rhone team. Seeing
// it is not enough: GET /user/installations lists every installation the user can reach a repository
// through, so every member of an organization sees the organization's. Connecting it gives a Rhone
// team the organization's repositories, so only these people may:
//   - for a user account's installation: that user (the account's id is theirs);
//   - for an organization's: whoever installed it (installation.created's `sender`, stored when the
//     webhook came; for an approved request that is the approving owner, never the `requester`), or an
//     active owner of the organization (GET /user/memberships/orgs/{org}: role "admin", state "active").
// Reading the membership with a GitHub App's user token needs the App's "Members: read" organization
// permission; when GitHub does not allow the read, the answer is no, with what to do instead.
import type { Team } from '../models/index.ts';
import { ForbiddenError } from '../lib/errors.ts';
import { githubStatus, githubTransient, githubUnavailable, type GithubClient } from '../providers/github/index.ts';
import type { InstallationState } from './github-installations.ts';

interface GhMembership {
  role: string;
  state: string;
}

const CODE = 'installation_not_yours';

/** The user's membership of `org`, null when they are not in it; throws when GitHub would not say. */
async function membershipOf(user: GithubClient, org: string, installationId: number, team: Team): Promise<GhMembership | null> {
  try {
    const { data } = (await user.request('GET /user/memberships/orgs/{org}', { org })) as { data: GhMembership };
    return data;
  } catch (err) {
    // "If the authenticated user is not affiliated with the organization, a 404 is returned."
    if (githubStatus(err) === 404) return null;
    if (githubTransient(err)) throw githubUnavailable(err, `checking your role in the GitHub organization ${org}`);
    throw new ForbiddenError(
      `GitHub did not let Rhone check that you are an owner of ${org} (it answered ${githubStatus(err)}), so installation ${installationId} was not connected to ${team.slug}. ` +
        `Ask an owner of ${org} to connect it from your team's settings in Rhone, or to approve the Rhone GitHub App's "Members: read" organization permission.`,
      CODE,
    );
  }
}

/** Throws a 403 saying who may connect it, unless `me` may connect the installation to `team`. */
export async function ensureMayConnect(
  user: GithubClient,
  me: { id: number; login: string },
  state: InstallationState,
  installerGithubId: number | null,
  team: Team,
): Promise<void> {
  const account = state.account;
  if (!account)
    throw new ForbiddenError(
      `GitHub did not say which account installation ${state.id} belongs to, so it was not connected. Start again from your team's settings in Rhone.`,
      CODE,
    );
  if (account.type !== 'Organization') {
    if (account.id !== undefined ? Number(account.id) === Number(me.id) : account.login.toLowerCase() === me.login.toLowerCase()) return;
    throw new ForbiddenError(
      `Installation ${state.id} is on the GitHub account ${account.login}, not yours (${me.login}), so it was not connected to ${team.slug}. Ask ${account.login} to connect it to a Rhone team they belong to, or install the App on your own account.`,
      CODE,
    );
  }
  if (installerGithubId !== null && Number(installerGithubId) === Number(me.id)) return;
  const membership = await membershipOf(user, account.login, state.id, team);
  if (membership?.state === 'active' && membership.role === 'admin') return;
  const role = membership ? `a ${membership.state === 'active' ? '' : `${membership.state} `}${membership.role}` : 'not a member';
  throw new ForbiddenError(
    `Only an owner of the GitHub organization ${account.login}, or whoever installed the App there, can connect its installation to a Rhone team; you are ${role} there, so nothing was connected. ` +
      `Ask an owner of ${account.login} to connect it to ${team.slug} from your team's settings in Rhone. If you installed it yourself a moment ago, start again from your team's settings in a minute.`,
    CODE,
  );
}
