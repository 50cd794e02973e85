// `npm test` runs the dashboard's browser tests, which drive Debian's Chromium
// (test/support/browser.ts). On a fresh machine it is missing: install it when we can (root with
// apt-get, as .ci/run does), otherwise stop before any test runs with one line saying how to get
// it. Never skip the browser tests silently. Plain Node, no dependencies (runs before npm install).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export const DEFAULT_CHROMIUM = '/usr/bin/chromium';
const INSTALL = 'apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium';

/** A test file needs the browser when it imports test/support/browser.ts. */
export function isBrowserTest(source) {
  return /support\/browser(\.ts)?['"]/.test(source);
}

/** The test files named on the command line; none means mocha's default spec (the whole suite). */
export function namedTestFiles(args) {
  return args.filter((a) => !a.startsWith('-') && a.endsWith('.ts'));
}

/**
 * What to do about Chromium before the tests, from an injected view of the machine:
 * { ok } | { install, say } | { fail, say }. `env` is the environment, `exists(file)` tells whether
 * Chromium is there, `readFile(file)` reads a named test file, `isRoot` and `hasAptGet` say whether
 * we may install Debian's package.
 */
export function planChromium({ args, env, exists, readFile, isRoot, hasAptGet }) {
  const files = namedTestFiles(args);
  if (files.length > 0 && !files.some((f) => isBrowserTest(readFile(f)))) return { action: 'ok' };
  const custom = env.CHROMIUM_PATH;
  const binary = custom || DEFAULT_CHROMIUM;
  if (exists(binary)) return { action: 'ok' };
  if (custom) {
    return {
      action: 'fail',
      say: `rhone: the browser tests need Chromium at CHROMIUM_PATH=${custom}, which does not exist; point CHROMIUM_PATH at a Chromium binary, or unset it to use Debian's (${DEFAULT_CHROMIUM}).`,
    };
  }
  if (isRoot && hasAptGet) {
    return { action: 'install', say: `rhone: the browser tests need Chromium at ${DEFAULT_CHROMIUM}; installing Debian's package (apt-get install chromium)…` };
  }
  return {
    action: 'fail',
    say: `rhone: the browser tests need Chromium at ${DEFAULT_CHROMIUM}, which is missing; install it with "sudo apt-get install chromium" (Debian/Ubuntu), or set CHROMIUM_PATH to a Chromium binary, then run npm test again.`,
  };
}

function executable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(command, env) {
  return (env.PATH ?? '').split(path.delimiter).some((dir) => dir && executable(path.join(dir, command)));
}

/** Runs the plan on this machine; exits the process when the tests cannot run. */
export function ensureChromium(args, root) {
  const plan = planChromium({
    args,
    env: process.env,
    exists: executable,
    readFile: (f) => {
      const file = path.resolve(root, f);
      return existsSync(file) ? readFileSync(file, 'utf8') : '';
    },
    isRoot: typeof process.getuid === 'function' && process.getuid() === 0,
    hasAptGet: onPath('apt-get', process.env),
  });
  if (plan.action === 'ok') return;
  if (plan.action === 'fail') {
    console.error(plan.say);
    process.exit(1);
  }
  console.log(plan.say);
  const result = spawnSync('sh', ['-c', INSTALL], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (result.status !== 0 || !executable(DEFAULT_CHROMIUM)) {
    console.error(
      `rhone: apt-get could not install Chromium (see its output above); install it with \`${INSTALL}\`, or set CHROMIUM_PATH, then run npm test again.`,
    );
    process.exit(1);
  }
}
