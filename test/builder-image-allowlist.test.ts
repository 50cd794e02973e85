// Which images a build plan may name: every image reference in the plan format (step inputs,
// deploy.base, deploy.inputs, copy commands' `image`) against RHONE_BUILD_IMAGE_ALLOWLIST, and
// never another Fly app's repository, whatever the list says.
import assert from 'node:assert/strict';
import { PlanImageRefusedError } from '../backend/builder/errors.ts';
import { DEFAULT_BUILD_IMAGE_ALLOWLIST, checkPlanImages, normalizeImage, planImages } from '../backend/builder/image-allowlist.ts';
import type { BuildPlan } from '../backend/builder/plan.ts';

const APP = 'rhone-shop-k3x9q2m7';
const plan = (image: string, where: 'step' | 'base' | 'deployInput' | 'copy' = 'step'): BuildPlan => ({
  steps: [{ name: 'build', inputs: where === 'step' ? [{ image }] : [{ local: true }], commands: where === 'copy' ? [{ src: '/x', dest: '/x', image }] : [] }],
  deploy: {
    base: { image: where === 'base' ? image : 'ghcr.io/railwayapp/railpack-runtime:mise-2026.8.6' },
    inputs: where === 'deployInput' ? [{ image }] : [],
  },
});
const check = (p: BuildPlan, allowlist: readonly string[] = DEFAULT_BUILD_IMAGE_ALLOWLIST) => checkPlanImages(p, { allowlist, flyApp: APP });

describe('builder: plan image allow-list', () => {
  it('finds every image reference the plan format has', () => {
    const p: BuildPlan = {
      steps: [{ name: 's', inputs: [{ image: 'a:1' }, { step: 'x' }], commands: [{ src: '/b', dest: '/b', image: 'b:2' }, { cmd: 'true' }] }],
      deploy: { base: { image: 'c:3' }, inputs: [{ image: 'd:4' }] },
    };
    assert.deepEqual(planImages(p), [
      { image: 'a:1', where: 'steps[0].inputs[0]' },
      { image: 'b:2', where: 'steps[0].commands[0]' },
      { image: 'c:3', where: 'deploy.base' },
      { image: 'd:4', where: 'deploy.inputs[0]' },
    ]);
  });

  it("allows Railpack's images, Docker Hub's official ones (bare or in full) and the app's own", () => {
    for (const image of [
      'ghcr.io/railwayapp/railpack-builder:mise-2026.8.6',
      'node:22',
      'node',
      `caddy@sha256:${'a'.repeat(64)}`,
      'docker.io/library/python:3.12-slim',
      `registry.fly.io/${APP}:deploy-1`,
    ]) {
      for (const where of ['step', 'base', 'deployInput', 'copy'] as const) assert.doesNotThrow(() => check(plan(image, where)), `${image} in ${where}`);
    }
    assert.equal(normalizeImage('node:22')?.name, 'docker.io/library/node');
    assert.equal(normalizeImage('someone/node:22')?.name, 'docker.io/someone/node');
  });

  it('refuses another namespace of Docker Hub, other registries, and unreadable references', () => {
    for (const image of ['someone/node:22', 'quay.io/evil/miner:1', 'ghcr.io/railwayapp/other:1', 'ghcr.io/railwayapp/railpack-../x', 'NODE:22']) {
      for (const where of ['step', 'base', 'deployInput', 'copy'] as const) {
        assert.throws(
          () => check(plan(image, where)),
          (err: unknown) => {
            assert.ok(err instanceof PlanImageRefusedError);
            assert.equal(err.permanent, true);
            assert.match(err.message, /^The build plan names the image ".*" \(.+\), which RHONE_BUILD_IMAGE_ALLOWLIST does not allow\./);
            return true;
          },
          `${image} in ${where}`,
        );
      }
    }
    assert.doesNotThrow(() => check(plan('quay.io/evil/miner:1'), [...DEFAULT_BUILD_IMAGE_ALLOWLIST, 'quay.io/evil/']), 'the operator can allow it');
  });

  it("never allows another Fly app's image, even when the list names registry.fly.io", () => {
    for (const image of [
      'registry.fly.io/rhone-other-aaaaaaaa:x',
      `registry.fly.io/${APP}-evil:x`,
      `registry.fly.io/${APP}/sub:x`,
      'REGISTRY.FLY.IO/rhone-other-aaaaaaaa:x',
    ]) {
      assert.throws(
        () => check(plan(image), [...DEFAULT_BUILD_IMAGE_ALLOWLIST, 'registry.fly.io/']),
        /another Fly app's image, which RHONE_BUILD_IMAGE_ALLOWLIST can never allow/,
        image,
      );
    }
  });
});
