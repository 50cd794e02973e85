import { z } from 'zod';
import { githubLogin, teamSlug } from '../../lib/slugs.ts';
import { pageQuery } from '../../lib/pagination.ts';

const repoName = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,100}$/, 'must be a GitHub repository name: letters, digits, ".", "_" and "-"')
  .refine((n) => n !== '.' && n !== '..', 'must be a GitHub repository name');

export const teamParams = { params: z.object({ team: teamSlug }) };

export const listRepos = {
  params: z.object({ team: teamSlug }),
  query: pageQuery.extend({ q: z.string().trim().max(100, 'must be at most 100 characters').optional() }),
};

export const listBranches = { params: z.object({ team: teamSlug, owner: githubLogin, repo: repoName }) };

export const install = { query: z.object({ team: teamSlug }) };

/** What GitHub sends to the setup URL, and to it again as the OAuth callback that confirms the user. */
export const setup = {
  query: z.object({
    installation_id: z.coerce.number().int().positive().optional(),
    setup_action: z.string().max(50).optional(),
    state: z.string().max(200).optional(),
    code: z.string().max(200).optional(),
    error: z.string().max(200).optional(),
  }),
};
