import { z } from 'zod';

import { APP_SLUG_LENGTH, RESERVED_SLUGS, SLUG_SHAPE, SLUG_SHAPE_MESSAGE, TEAM_SLUG_LENGTH } from './slug-rules.ts';

export { RESERVED_SLUGS } from './slug-rules.ts';

function slugOf({ min, max }: { min: number; max: number }) {
  return z
    .string()
    .min(min, `must be at least ${min} characters`)
    .max(max, `must be at most ${max} characters`)
    .regex(SLUG_SHAPE, SLUG_SHAPE_MESSAGE)
    .refine((s) => !RESERVED_SLUGS.has(s), 'is reserved; choose another');
}

/** An app's slug: globally unique, it becomes {slug}.rhone.app. */
export const appSlug = slugOf(APP_SLUG_LENGTH);

/** A team's slug: GitHub logins become personal team slugs, so up to 39 characters. */
export const teamSlug = slugOf(TEAM_SLUG_LENGTH);

/** GitHub's login rule: letters, digits and single inner hyphens, up to 39 characters. */
export const githubLogin = z
  .string()
  .min(1, 'is required')
  .max(39, 'must be at most 39 characters')
  .regex(/^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9]))*$/, 'must be a GitHub login: letters, digits and single hyphens');
