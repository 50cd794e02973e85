// Release inputs and fast timings for tests on the local runtime.
import { flyAppNameForSlug } from '../../backend/providers/fly/names.ts';
import type { ReleaseInput, ReleaseTiming } from '../../backend/releases/blue-green.ts';

export const FAST: Partial<ReleaseTiming> = {
  startTimeoutMs: 15_000,
  healthDeadlineMs: 15_000,
  pollMs: 100,
  proxyLearnMs: 300,
  proxyForgetMs: 300,
  checks: { interval: '200ms', timeout: '1s', gracePeriod: '0s' },
};

export function releaseInput(slug: string, deploymentId: string, tag: string, overrides: Partial<ReleaseInput> = {}): ReleaseInput {
  return {
    flyApp: flyAppNameForSlug(slug),
    appId: `app-${slug}`,
    deploymentId,
    releaseVersion: 1,
    image: `rhone-local/${slug}:${tag}`,
    settings: { region: 'local', machineSize: 'shared-cpu-1x', internalPort: 8080, healthCheckPath: '/health', instanceCount: 1 },
    secrets: { GREETING: `hello from ${tag}` },
    env: { RHONE_RELEASE: tag },
    ...overrides,
  };
}
