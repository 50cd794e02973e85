// `npm test` on a fresh machine: Chromium is installed when it can be, and otherwise the run stops
// before any test with one line saying how to install it (scripts/chromium.mjs). The machine is
// injected; nothing here installs or removes a package.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_CHROMIUM, isBrowserTest, planChromium, type Machine } from '../scripts/chromium.mjs';

const root = path.resolve(import.meta.dirname, '..');
const sources: Record<string, string> = {
  'test/dashboard-e2e.int.test.ts': "import { launchBrowser } from './support/browser.ts';",
  'test/config.test.ts': "import { loadConfig } from '../backend/config.ts';",
};

function machine(over: Partial<Machine> = {}): Machine {
  return { args: [], env: {}, exists: () => false, readFile: (f) => sources[f] ?? '', isRoot: false, hasAptGet: false, ...over };
}

describe('npm test and Chromium', () => {
  it('runs when Chromium is there', () => {
    assert.deepEqual(planChromium(machine({ exists: (f) => f === DEFAULT_CHROMIUM })), { action: 'ok' });
  });

  it("installs Debian's Chromium when it is missing and it runs as root with apt-get", () => {
    const plan = planChromium(machine({ isRoot: true, hasAptGet: true }));
    assert.equal(plan.action, 'install');
    assert.match(plan.say ?? '', /installing Debian's package/);
  });

  for (const [why, over] of [
    ['not root', { isRoot: false, hasAptGet: true }],
    ['no apt-get', { isRoot: true, hasAptGet: false }],
  ] as const) {
    it(`stops with one line saying how to install it when it cannot (${why})`, () => {
      const plan = planChromium(machine(over));
      assert.equal(plan.action, 'fail');
      assert.match(
        plan.say ?? '',
        /^rhone: the browser tests need Chromium at \/usr\/bin\/chromium, which is missing; install it with "sudo apt-get install chromium"/,
      );
      assert.doesNotMatch(plan.say ?? '', /\n/);
    });
  }

  it('never installs over a CHROMIUM_PATH that does not exist: it says to fix the setting', () => {
    const plan = planChromium(machine({ env: { CHROMIUM_PATH: '/opt/chrome/chrome' }, isRoot: true, hasAptGet: true }));
    assert.equal(plan.action, 'fail');
    assert.match(plan.say ?? '', /CHROMIUM_PATH=\/opt\/chrome\/chrome, which does not exist/);
    assert.equal(planChromium(machine({ env: { CHROMIUM_PATH: '/opt/chrome/chrome' }, exists: (f) => f === '/opt/chrome/chrome' })).action, 'ok');
  });

  it('skips the check only when the named test files have no browser test', () => {
    assert.equal(planChromium(machine({ args: ['test/config.test.ts'] })).action, 'ok');
    assert.equal(planChromium(machine({ args: ['--grep', 'x', 'test/config.test.ts', 'test/dashboard-e2e.int.test.ts'] })).action, 'fail');
    assert.equal(planChromium(machine({ args: ['--grep', 'dashboard'] })).action, 'fail', 'no file named: the whole suite, browser tests included');
  });

  it('recognises the real browser test file', () => {
    assert.ok(isBrowserTest(readFileSync(path.join(root, 'test/dashboard-e2e.int.test.ts'), 'utf8')));
    assert.ok(!isBrowserTest(readFileSync(path.join(root, 'test/config.test.ts'), 'utf8')));
  });

  it('npm test stops before running anything, with that one line, when Chromium cannot be had', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rhone-chromium-'));
    try {
      const file = path.join(dir, 'browser.test.ts');
      writeFileSync(file, "import '../support/browser.ts';\nit('ran', () => {});\n");
      const run = spawnSync(process.execPath, ['scripts/bootstrap.mjs', 'test', file], {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, CHROMIUM_PATH: path.join(dir, 'no-chromium') },
        timeout: 15_000,
      });
      assert.equal(run.status, 1, run.stdout + run.stderr);
      assert.equal(run.stdout, '');
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
      assert.match(run.stderr, /^rhone: the browser tests need Chromium at CHROMIUM_PATH=/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
