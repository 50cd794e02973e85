// storeImage: how the local builder hands a finished workspace to the local image store.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { importImage, readImage, storeImage } from '../local/images.ts';
import { TooLargeError } from '../backend/source/limits.ts';
import { cleanupTemp, tempDir } from './builder-support.ts';

describe('builder: storing a build as a local image', () => {
  after(cleanupTemp);

  it('moves the workspace in (no copy), replacing the same tag whole', async () => {
    const dataDir = tempDir('rhone-data-');
    const build = (file: string) => {
      const dir = path.join(dataDir, 'builds', file);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, file), file);
      return dir;
    };
    const first = build('one.js');
    const stored = await storeImage(dataDir, 'web', 'v1', first, { cmd: ['sh', '-c', 'node one.js'], env: { A: '1' } });
    assert.equal(stored.ref, 'rhone-local/web:v1');
    assert.ok(!existsSync(first), 'the workspace was moved, not copied');
    const image = await readImage(dataDir, 'rhone-local/web:v1');
    assert.deepEqual([image.manifest.cmd, image.manifest.env], [['sh', '-c', 'node one.js'], { A: '1' }]);
    assert.equal(readFileSync(path.join(image.dir, 'one.js'), 'utf8'), 'one.js');

    await storeImage(dataDir, 'web', 'v1', build('two.js'), { cmd: ['node', 'two.js'] });
    const again = await readImage(dataDir, 'rhone-local/web:v1');
    assert.deepEqual(again.manifest.cmd, ['node', 'two.js']);
    assert.ok(!existsSync(path.join(again.dir, 'one.js')), 'nothing of the old image is left');

    await assert.rejects(storeImage(dataDir, '../escape', 'v1', build('three.js'), { cmd: ['x'] }), /not a valid/);
    await assert.rejects(storeImage(dataDir, 'web', 'v2', build('four.js'), { cmd: [] }), /needs a start command/);
  });

  it('refuses a build output over the artifact limits, leaving the previous image in place', async () => {
    const dataDir = tempDir('rhone-data-');
    const limits = { maxBytes: 1000, maxEntries: 3, settings: { bytes: 'RHONE_MAX_ARTIFACT_BYTES', entries: 'RHONE_MAX_ARTIFACT_FILES' } };
    const build = (name: string, files: Record<string, string>) => {
      const dir = path.join(dataDir, 'builds', name);
      mkdirSync(dir, { recursive: true });
      for (const [file, body] of Object.entries(files)) writeFileSync(path.join(dir, file), body);
      return dir;
    };
    await storeImage(dataDir, 'web', 'v1', build('ok', { 'a.js': 'a' }), { cmd: ['node', 'a.js'], limits });
    const tooMany = build('many', { 'a.js': 'a', 'b.js': 'b', 'c.js': 'c' }); // with the manifest: 4
    await assert.rejects(
      storeImage(dataDir, 'web', 'v1', tooMany, { cmd: ['node', 'a.js'], limits }),
      (err: Error) =>
        err instanceof TooLargeError &&
        err.message.startsWith('The image rhone-local/web:v1 holds more than 3 files and directories, the limit (RHONE_MAX_ARTIFACT_FILES)'),
    );
    const tooBig = build('big', { 'a.js': 'x'.repeat(2000) });
    await assert.rejects(
      importImage(dataDir, 'web', 'v1', tooBig, { cmd: ['node', 'a.js'], limits }),
      (err: Error) => err instanceof TooLargeError && /RHONE_MAX_ARTIFACT_BYTES/.test(err.message),
    );
    assert.equal(readFileSync(path.join((await readImage(dataDir, 'rhone-local/web:v1')).dir, 'a.js'), 'utf8'), 'a', 'the previous image still serves');
  });
});
