// Which images a production build may start from. A tenant writes the plan (railpack.json can set
// any step's inputs and deploy.base), and the build runs with a registry login, so without a check
// one app's plan could `FROM` another app's image in registry.fly.io: Fly's registry access is
// per organization ("an image pushed under one app can be deployed by another app in the same
// org", Fly docs blueprints/using-the-fly-docker-registry). The build's login is the app's own
// deploy token (jobs/processors/build.ts), and on top of it every image the plan names must match
// RHONE_BUILD_IMAGE_ALLOWLIST, and may never be another app's repository under registry.fly.io/.
import { PlanImageRefusedError } from './errors.ts';
import type { BuildPlan, Layer } from './plan.ts';

/**
 * Railpack's own images (the builder and runtime images its plans name, pinned to its mise
 * version) and Docker Hub's official images, which a bare `node:22` means. Prefixes are matched
 * against the normalized reference (docker.io/library/node:22), literally: end one with "/" to
 * mean a namespace.
 */
export const DEFAULT_BUILD_IMAGE_ALLOWLIST: readonly string[] = ['ghcr.io/railwayapp/railpack-', 'docker.io/library/'];

const FLY_REGISTRY = 'registry.fly.io';
const DOCKER_HUB = 'docker.io';

// The grammar of github.com/distribution/reference (reference.go): an optional domain (a first
// component with a dot or a port, or "localhost"), lower-case path components separated by "/",
// an optional tag, an optional digest.
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const PATH = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const DOMAIN = /^(?:localhost|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::\d+)?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$/;

export interface NormalizedImage {
  /** docker.io/library/node, registry.fly.io/rhone-shop-k3x9q2m7 */
  name: string;
  domain: string;
  path: string;
  /** The whole reference, normalized: docker.io/library/node:22 */
  ref: string;
}

/** Docker's normalization of a reference (`node:22` is docker.io/library/node:22); undefined when it is not one. */
export function normalizeImage(image: string): NormalizedImage | undefined {
  let rest = image;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) return undefined;
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) return undefined;
  }
  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  const hasDomain = slash !== -1 && (first.includes('.') || first.includes(':') || first === 'localhost');
  let domain = hasDomain ? first.toLowerCase() : DOCKER_HUB;
  let path = hasDomain ? rest.slice(slash + 1) : rest;
  if (hasDomain && !DOMAIN.test(first)) return undefined;
  if (domain === 'index.docker.io') domain = DOCKER_HUB;
  if (domain === DOCKER_HUB && !path.includes('/')) path = `library/${path}`;
  if (!PATH.test(path)) return undefined;
  const name = `${domain}/${path}`;
  return { name, domain, path, ref: `${name}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}` };
}

/** Every image reference of a plan, with where it is (for the message). */
export function planImages(plan: BuildPlan): { image: string; where: string }[] {
  const found: { image: string; where: string }[] = [];
  // Railpack treats an empty image as none (core/plan/layer.go: `json:"image,omitempty"`).
  const layer = (l: Layer | undefined, where: string) => {
    if (typeof l?.image === 'string' && l.image !== '') found.push({ image: l.image, where });
  };
  for (const [i, step] of (plan.steps ?? []).entries()) {
    for (const [j, input] of (step.inputs ?? []).entries()) layer(input, `steps[${i}].inputs[${j}]`);
    // A copy command may copy from an image (core/plan/command.go CopyCommand.Image).
    for (const [j, command] of (step.commands ?? []).entries()) {
      const image = (command as { image?: unknown }).image;
      if (typeof image === 'string' && image !== '') found.push({ image, where: `steps[${i}].commands[${j}]` });
    }
  }
  layer(plan.deploy.base, 'deploy.base');
  for (const [j, input] of (plan.deploy.inputs ?? []).entries()) layer(input, `deploy.inputs[${j}]`);
  return found;
}

/** Throws PlanImageRefusedError for the first image of the plan that the build may not use. */
export function checkPlanImages(plan: BuildPlan, options: { allowlist: readonly string[]; flyApp: string }): void {
  for (const { image, where } of planImages(plan)) {
    const normalized = normalizeImage(image);
    if (normalized?.domain === FLY_REGISTRY) {
      // The app's own repository only: its previous images, never a neighbour's.
      if (normalized.path === options.flyApp) continue;
      throw new PlanImageRefusedError(
        `The build plan names the image "${image}" (${where}), another Fly app's image, which RHONE_BUILD_IMAGE_ALLOWLIST can never allow. A build may use only its own app's images under ${FLY_REGISTRY}/; remove it from railpack.json (or the build and start settings) and deploy again.`,
        image,
        where,
      );
    }
    if (normalized && options.allowlist.some((prefix) => prefix !== '' && normalized.ref.startsWith(prefix))) continue;
    throw new PlanImageRefusedError(
      `The build plan names the image "${image}" (${where}), which RHONE_BUILD_IMAGE_ALLOWLIST does not allow. Use an image that starts with ${options.allowlist.join(' or ')} in railpack.json, or ask the operator to add its prefix to RHONE_BUILD_IMAGE_ALLOWLIST.`,
      image,
      where,
    );
  }
}
