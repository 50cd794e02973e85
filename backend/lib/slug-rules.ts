// The rules for app and team slugs, with no dependencies: the API's schemas (slugs.ts) and the
// dashboard's live validation both use them, so the two can never disagree.

// Names that would be confusing or dangerous as {slug}.rhone.app or as a team's address.
export const RESERVED_SLUGS = new Set([
  'www',
  'api',
  'app',
  'apps',
  'admin',
  'administrator',
  'dashboard',
  'rhone',
  'root',
  'status',
  'help',
  'support',
  'docs',
  'blog',
  'mail',
  'email',
  'smtp',
  'ftp',
  'ssh',
  'cdn',
  'static',
  'assets',
  'auth',
  'login',
  'logout',
  'signin',
  'signup',
  'account',
  'accounts',
  'billing',
  'settings',
  'system',
  'internal',
  'webhook',
  'webhooks',
  'registry',
  'builder',
  'metrics',
  'healthz',
  'readyz',
  'localhost',
  'test',
  'new',
  'team',
  'teams',
  'security',
  'abuse',
  'postmaster',
  'hostmaster',
  'ns1',
  'ns2',
  'dns',
  'git',
  'github',
]);

export const SLUG_SHAPE = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
export const SLUG_SHAPE_MESSAGE = 'use lowercase letters, digits and single hyphens, with no hyphen at either end';

export const APP_SLUG_LENGTH = { min: 3, max: 30 } as const;
export const TEAM_SLUG_LENGTH = { min: 2, max: 39 } as const;

/** What is wrong with `s` as a slug of that length, or null when nothing is. */
export function slugProblem(s: string, { min, max }: { min: number; max: number }): string | null {
  if (s.length < min) return `must be at least ${min} characters`;
  if (s.length > max) return `must be at most ${max} characters`;
  if (!SLUG_SHAPE.test(s)) return SLUG_SHAPE_MESSAGE;
  if (RESERVED_SLUGS.has(s)) return 'is reserved; choose another';
  return null;
}

/** A slug suggested from a display name: "My Shop API" → "my-shop-api". */
export function suggestSlug(name: string, max: number = APP_SLUG_LENGTH.max): string {
  return name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, max)
    .replace(/-+$/, '');
}
