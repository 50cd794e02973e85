// Scratch directories of killed workers are removed when a worker starts; those of running
// processes (this one, another live worker) are left alone.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { removeOrphanWorkDirs, workDirPrefix } from '../jobs/work-dirs.ts';

describe('stage scratch directories', () => {
  it('removes those whose worker is gone, and keeps those of running processes', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-work-'));
    const dead = spawn(process.execPath, ['-e', '']);
    await once(dead, 'exit');
    const alive = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    try {
      const make = (name: string) => {
        mkdirSync(path.join(dataDir, name));
        return name;
      };
      const gone = make(`work-build-${dead.pid}-abc123`);
      const mine = make(path.basename(`${workDirPrefix(dataDir, 'clone')}def456`));
      const other = make(`work-analyze-${alive.pid}-ghi789`);
      const unrelated = make('images');
      assert.deepEqual(await removeOrphanWorkDirs(dataDir), [gone]);
      for (const kept of [mine, other, unrelated]) assert.ok(existsSync(path.join(dataDir, kept)), `${kept} was removed`);
      assert.equal(existsSync(path.join(dataDir, gone)), false);
    } finally {
      alive.kill();
    }
  });
});
