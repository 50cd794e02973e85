// Scratch directories of the pipeline's stages: `work-<stage>-<pid>-XXXXXX` in the data
// directory. A stage removes its own when it ends; one killed mid-stage cannot, and a source or
// build tree is easily 100 MB, so each worker removes, when it starts, those of processes that are
// gone. (Housekeeping also removes any left older than a day, whoever made them.)
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';

const WORK_DIR = /^work-[a-z]+-(\d+)-/;

/** The mkdtemp prefix for a stage's scratch directory, naming this process. */
export function workDirPrefix(dataDir: string, stage: string): string {
  return path.join(dataDir, `work-${stage}-${process.pid}-`);
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the scratch directories whose process is no longer running; returns their names. */
export async function removeOrphanWorkDirs(dataDir: string): Promise<string[]> {
  const removed: string[] = [];
  const entries = await readdir(dataDir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const pid = entry.isDirectory() ? WORK_DIR.exec(entry.name)?.[1] : undefined;
    if (!pid || Number(pid) === process.pid || running(Number(pid))) continue;
    await rm(path.join(dataDir, entry.name), { recursive: true, force: true });
    removed.push(entry.name);
  }
  return removed;
}
