import { z } from 'zod';

// Names that would be confusing or dangerous as {slug}.rhone.app or as a team's address.
export const RESERVED_SLUGS = new Set([
  'www', 'api', 'app', 'apps', 'admin', 'administrator', 'dashboard', 'rhone', 'root', 'status', 'help',
  'support', 'docs', 'blog', 'mail', 'email', 'smtp', 'ftp', 'ssh', 'cdn', 'static', 'assets', 'auth',
  'login', 'logout', 'signin', 'signup', 'account', 'accounts', 'billing', 'settings', 'system', 'internal',
  'webhook', 'webhooks', 'registry', 'builder', 'metrics', 'healthz', 'readyz', 'localhost', 'test', 'new',
  'team', 'teams', 'security', 'abuse', 'postmaster', 'hostmaster', 'ns1', 'ns2', 'dns', 'git', 'github',
]);

const SHAPE = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
const SHAPE_MESSAGE = 'use lowercase letters, digits and single hyphens, with no hyphen at either end';

function slugOf(min: number, max: number) {
  return z
    .string()
    .min(min, `must be at least ${min} characters`)
    .max(max, `must be at most ${max} characters`)
    .regex(SHAPE, SHAPE_MESSAGE)
    .refine((s) => !RESERVED_SLUGS.has(s), 'is reserved; choose another');
}

/** An app's slug: globally unique, it becomes {slug}.rhone.app. */
export const appSlug = slugOf(3, 30);

/** A team's slug: GitHub logins become personal team slugs, so up to 39 characters. */
export const teamSlug = slugOf(2, 39);

/** GitHub's login rule: letters, digits and single inner hyphens, up to 39 characters. */
export const githubLogin = z
  .string()
  .min(1, 'is required')
  .max(39, 'must be at most 39 characters')
  .regex(/^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9]))*$/, 'must be a GitHub login: letters, digits and single hyphens');
