// Builds the dashboard (Vite) when frontend/ or what it imports changed since the last build.
// `npm start` and the browser tests call it; the production image builds it once (Dockerfile).
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const frontendDist = path.join(root, 'frontend', 'dist');
const stampFile = path.join(frontendDist, '.build-stamp');

// What the build reads: the dashboard's sources, the backend modules it shares (slug rules, Fly
// presets), and the dependency versions.
const INPUTS = ['frontend/src', 'frontend/index.html', 'frontend/vite.config.ts', 'backend/lib', 'package-lock.json'];

function hashInputs(): string {
  const h = createHash('sha256');
  const visit = (rel: string) => {
    const abs = path.join(root, rel);
    if (!existsSync(abs)) return;
    if (statSync(abs).isDirectory()) {
      for (const name of readdirSync(abs).sort()) visit(path.join(rel, name));
      return;
    }
    h.update(rel).update('\0').update(readFileSync(abs)).update('\0');
  };
  for (const input of INPUTS) visit(input);
  return h.digest('hex');
}

function builtFrom(hash: string): boolean {
  return existsSync(path.join(frontendDist, 'index.html')) && existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === hash;
}

/** Runs `vite build` unless the last build is of the same inputs. Returns whether it built. */
export async function ensureFrontendBuilt(log: (line: string) => void = (l) => console.log(l)): Promise<boolean> {
  const want = hashInputs();
  if (builtFrom(want)) return false;
  log('rhone: building the dashboard (vite)…');
  const started = Date.now();
  const { build } = await import('vite');
  await build({ configFile: path.join(root, 'frontend', 'vite.config.ts'), logLevel: 'warn' });
  writeFileSync(stampFile, want);
  log(`rhone: dashboard built in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return true;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await ensureFrontendBuilt();
}
