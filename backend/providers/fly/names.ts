// How Rhone names things on Fly. Fly app names are global across every Fly customer, so a name
// computed from the slug alone could already be someone else's (or be squatted), and would be
// computed again for the next app that reuses a deleted app's slug. Each app therefore gets its
// name once, with a random suffix, and keeps it in apps.fly_app_name; nothing recomputes it.
// Apps created before names were stored kept `rhone-{slug}` (the migration copied it).
import { randomBytes } from 'node:crypto';

export const FLY_APP_PREFIX = 'rhone-';
const SUFFIX_LENGTH = 8;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** A fresh Fly app name for a new app: `rhone-{slug}-{8 random letters/digits}` (at most 45 of Fly's 63). */
export function newFlyAppName(slug: string): string {
  const bytes = randomBytes(SUFFIX_LENGTH);
  const suffix = [...bytes].map((b) => ALPHABET[b % ALPHABET.length]).join('');
  return `${FLY_APP_PREFIX}${slug}-${suffix}`;
}

/**
 * Whether a Fly app name is one Rhone gave the app of this slug: the legacy `rhone-{slug}`, or
 * `rhone-{slug}-{suffix}`. The local router uses it to map `{slug}.localhost` to the app.
 */
export function isFlyAppNameOfSlug(name: string, slug: string): boolean {
  if (name === `${FLY_APP_PREFIX}${slug}`) return true;
  const rest = name.slice(FLY_APP_PREFIX.length + slug.length);
  return name.startsWith(`${FLY_APP_PREFIX}${slug}-`) && new RegExp(`^-[a-z0-9]{${SUFFIX_LENGTH}}$`).test(rest);
}

/** The legacy name of an app created before names were stored; tests of pre-existing apps use it. */
export function flyAppNameForSlug(slug: string): string {
  return `${FLY_APP_PREFIX}${slug}`;
}

/**
 * The private network (6PN) of a Rhone app: its own, so tenants' machines cannot reach each other,
 * the builder, or anything else of Rhone's over the org's network ("Any Machine started in such an
 * app will not be able to access other apps within their organization over the private network",
 * Fly docs machines/api/apps-resource; flyctl `apps create --network`). Fly returns it on
 * GET /v1/apps/{app}, so it is also the mark that says which Rhone app a Fly app belongs to: the
 * Apps API has no metadata of its own.
 */
export function flyNetworkForApp(appId: string): string {
  return `rhone-app-${appId}`;
}
