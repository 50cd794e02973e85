// How Rhone names things on Fly. An app's slug becomes the Fly app `rhone-{slug}`; the local
// router maps `{slug}.localhost` back to that same Fly app name.

export const FLY_APP_PREFIX = 'rhone-';

export function flyAppNameForSlug(slug: string): string {
  return `${FLY_APP_PREFIX}${slug}`;
}
