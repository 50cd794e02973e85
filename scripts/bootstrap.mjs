#!/usr/bin/env node
// The README's two commands start here. Plain Node with no dependencies, because on a fresh
// clone nothing is installed yet: install what is missing, then hand over to TypeScript (tsx).
import { spawnSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureChromium } from './chromium.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stampFile = path.join(root, 'node_modules', '.rhone-install-stamp');

const ENTRIES = {
  start: ['backend/cli/start.ts'],
  migrate: ['backend/cli/migrate.ts'],
  'rotate-key': ['backend/cli/rotate-key.ts'],
  'stripe-setup': ['backend/cli/stripe-setup.ts'],
  test: ['node_modules/mocha/bin/mocha.js'],
};

function lockHash() {
  const h = createHash('sha256');
  for (const f of ['package.json', 'package-lock.json']) {
    if (existsSync(path.join(root, f))) h.update(readFileSync(path.join(root, f)));
  }
  return h.digest('hex');
}

function ensureInstalled() {
  const want = lockHash();
  const have = existsSync(stampFile) ? readFileSync(stampFile, 'utf8').trim() : '';
  if (want === have) return;
  const fresh = !existsSync(path.join(root, 'node_modules'));
  const args = fresh && existsSync(path.join(root, 'package-lock.json')) ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund'];
  console.log(`rhone: installing dependencies (npm ${args[0]})…`);
  const result = spawnSync('npm', args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error('rhone: npm could not install the dependencies; see its output above, fix it, and run the command again.');
    process.exit(result.status ?? 1);
  }
  writeFileSync(stampFile, want);
}

const [command, ...rest] = process.argv.slice(2);
// `install` only brings node_modules up to date: .ci/run needs the tools before the checks it runs.
if (command === 'install') {
  ensureInstalled();
  process.exit(0);
}
if (!ENTRIES[command]) {
  console.error(`usage: node scripts/bootstrap.mjs install|${Object.keys(ENTRIES).join('|')}`);
  process.exit(2);
}
// Before installing anything: a run that cannot have its browser stops at once, in one line.
if (command === 'test') ensureChromium(rest, root);
ensureInstalled();
const child = spawn(process.execPath, ['--import', 'tsx', ...ENTRIES[command], ...rest], { cwd: root, stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
