// storeImage: how the local builder hands a finished workspace to the local image store.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readImage, storeImage } from '../local/images.ts';
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
});
