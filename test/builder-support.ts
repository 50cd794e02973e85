// Helpers for the builder tests: small repositories written into temp directories.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const made: string[] = [];

/** A temp directory holding `files` (path → content); removed by cleanupTemp(). */
export function repo(files: Record<string, string>, prefix = 'rhone-repo-'): string {
  const dir = tempDir(prefix);
  writeTree(dir, files);
  return dir;
}

export function tempDir(prefix = 'rhone-builder-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export function writeTree(dir: string, files: Record<string, string>): void {
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(dir, name);
    mkdirSync(path.dirname(file), { recursive: true });
    if (name.endsWith('/')) mkdirSync(file, { recursive: true });
    else writeFileSync(file, content);
  }
}

export function cleanupTemp(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export const root = path.resolve(import.meta.dirname, '..');
