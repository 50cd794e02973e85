import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArtifactNotFoundError, InvalidArtifactKeyError, LocalArtifactStore } from '../backend/source/artifacts.ts';
import { getConfig } from '../backend/config.ts';

/** A directory of `count` files that all say `version`, so a mixed or partial copy shows. */
function makeVersion(dir: string, version: string, count: number, size = 64): string {
  mkdirSync(path.join(dir, 'nested'), { recursive: true });
  for (let i = 0; i < count; i += 1) {
    writeFileSync(path.join(dir, i % 2 ? 'nested' : '', `f${i}.txt`), `${version}\n`.padEnd(size, '.'));
  }
  return dir;
}

/** The single version every file of `dir` holds, or a description of what is wrong. */
function versionOf(dir: string, count: number): string {
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((n) => n.endsWith('.txt'));
  if (files.length !== count) return `partial: ${files.length}/${count} files`;
  const versions = new Set(files.map((n) => readFileSync(path.join(dir, n), 'utf8').split('\n')[0]));
  return versions.size === 1 ? [...versions][0] : `mixed: ${[...versions].join(',')}`;
}

describe('artifact store (local)', function () {
  this.timeout(60_000);
  let tmp: string;
  let store: LocalArtifactStore;
  let n = 0;
  const fresh = () => path.join(tmp, `out-${(n += 1)}`);

  beforeEach(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'rhone-artifacts-'));
    store = new LocalArtifactStore(path.join(tmp, 'store'));
  });
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));

  it('lives under the data directory by default', () => {
    assert.equal(new LocalArtifactStore().root, path.join(getConfig().dataDir, 'artifacts'));
  });

  it('gives back what was put: contents, modes, timestamps, and symlinks as links', async () => {
    const src = path.join(tmp, 'src');
    mkdirSync(path.join(src, 'bin'), { recursive: true });
    writeFileSync(path.join(src, 'package.json'), '{"name":"app"}');
    writeFileSync(path.join(src, 'bin', 'start'), '#!/bin/sh\necho hi\n');
    chmodSync(path.join(src, 'bin', 'start'), 0o755);
    symlinkSync('bin/start', path.join(src, 'run'));
    symlinkSync('/etc/passwd', path.join(src, 'escape'));

    await store.putDir('deployments/d1/source', src);
    assert.equal(await store.has('deployments/d1/source'), true);
    const out = fresh();
    await store.getDir('deployments/d1/source', out);

    assert.equal(readFileSync(path.join(out, 'package.json'), 'utf8'), '{"name":"app"}');
    assert.equal(statSync(path.join(out, 'bin', 'start')).mode & 0o777, 0o755);
    // Build tools compare mtimes; the copy keeps them (to the millisecond utimes offers).
    assert.ok(Math.abs(statSync(path.join(out, 'package.json')).mtimeMs - statSync(path.join(src, 'package.json')).mtimeMs) < 1);
    // Links stay links with their original target: never resolved, never copied from the host.
    assert.equal(readlinkSync(path.join(out, 'run')), 'bin/start');
    assert.equal(lstatSync(path.join(out, 'escape')).isSymbolicLink(), true);
    assert.equal(readlinkSync(path.join(out, 'escape')), '/etc/passwd');
    // The artifact is a copy: changing the source afterwards does not change it.
    writeFileSync(path.join(src, 'package.json'), 'changed');
    const again = fresh();
    await store.getDir('deployments/d1/source', again);
    assert.equal(readFileSync(path.join(again, 'package.json'), 'utf8'), '{"name":"app"}');
  });

  it('says when an artifact does not exist, and will not overwrite a non-empty destination', async () => {
    assert.equal(await store.has('deployments/none/source'), false);
    await assert.rejects(store.getDir('deployments/none/source', fresh()), ArtifactNotFoundError);

    await store.putDir('a/b', makeVersion(path.join(tmp, 'v1'), 'v1', 3));
    const busy = fresh();
    mkdirSync(busy);
    writeFileSync(path.join(busy, 'keep.txt'), 'mine');
    await assert.rejects(store.getDir('a/b', busy), /must be empty/);
    assert.deepEqual(readdirSync(busy), ['keep.txt']);
    const empty = fresh();
    mkdirSync(empty);
    await store.getDir('a/b', empty);
    assert.equal(versionOf(empty, 3), 'v1');
  });

  it('replaces an artifact whole: nothing of the old one remains', async () => {
    await store.putDir('deployments/d1/source', makeVersion(path.join(tmp, 'v1'), 'v1', 10));
    await store.putDir('deployments/d1/source', makeVersion(path.join(tmp, 'v2'), 'v2', 4));
    const out = fresh();
    await store.getDir('deployments/d1/source', out);
    assert.equal(versionOf(out, 4), 'v2');
    assert.equal(readdirSync(path.join(store.root, 'objects')).length, 1, 'the old copy was deleted');
  });

  it('removes a prefix by whole path segments', async () => {
    const dir = makeVersion(path.join(tmp, 'v1'), 'v1', 2);
    for (const key of ['deployments/d1/source', 'deployments/d1/image', 'deployments/d12/source', 'deployments/d1']) {
      await store.putDir(key, dir);
    }
    await store.remove('deployments/d1');
    assert.equal(await store.has('deployments/d1'), false);
    assert.equal(await store.has('deployments/d1/source'), false);
    assert.equal(await store.has('deployments/d1/image'), false);
    assert.equal(await store.has('deployments/d12/source'), true, 'd12 is not under d1');
    assert.equal(readdirSync(path.join(store.root, 'objects')).length, 1);
    await store.remove('deployments/never-there');
  });

  it('refuses keys that could leave the store', async () => {
    const dir = makeVersion(path.join(tmp, 'v1'), 'v1', 1);
    const bad = ['../escape', 'a/../../escape', '/etc/passwd', 'a//b', 'a/', '', '.hidden', 'a/./b', 'a\\..\\b', 'x.ref', 'a b'];
    for (const key of bad) {
      await assert.rejects(store.putDir(key, dir), InvalidArtifactKeyError, key);
      await assert.rejects(store.getDir(key, fresh()), InvalidArtifactKeyError, key);
      await assert.rejects(store.has(key), InvalidArtifactKeyError, key);
      await assert.rejects(store.remove(key), InvalidArtifactKeyError, key);
    }
    assert.equal(existsSync(path.join(tmp, 'escape')), false);
    assert.equal(existsSync(path.join(store.root, 'keys')), false, 'nothing was written');
  });

  it('readers see the old or the new artifact whole while it is replaced, never a mix', async () => {
    const count = 100;
    const versions = ['v1', 'v2'].map((v) => makeVersion(path.join(tmp, v), v, count));
    await store.putDir('deployments/d1/source', versions[0]);
    let writing = true;
    const writer = (async () => {
      for (let i = 1; i <= 8; i += 1) await store.putDir('deployments/d1/source', versions[i % 2]);
      writing = false;
    })();
    const seen: string[] = [];
    while (writing) {
      const out = fresh();
      await store.getDir('deployments/d1/source', out);
      seen.push(versionOf(out, count));
    }
    await writer;
    assert.ok(seen.length > 0);
    assert.deepEqual(seen.filter((v) => v !== 'v1' && v !== 'v2'), []);
  });

  it('a writer killed mid-put leaves no artifact, or the previous one intact', async function () {
    const count = 1500;
    const big = makeVersion(path.join(tmp, 'big'), 'v2', count, 16_384);
    await store.putDir('deployments/d2/source', makeVersion(path.join(tmp, 'v1'), 'v1', 5));

    for (const key of ['deployments/d1/source', 'deployments/d2/source']) {
      const before = countFiles(store.root);
      const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./artifacts-put-child.ts', import.meta.url)), store.root, key, big], {
        stdio: 'inherit',
      });
      // Kill it once its copy is under way (files are appearing in the store), before it can finish.
      await until(() => countFiles(store.root) > before + 20);
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));

      if (key === 'deployments/d1/source') {
        assert.equal(await store.has(key), false, 'a half-written artifact is not visible');
        await assert.rejects(store.getDir(key, fresh()), ArtifactNotFoundError);
      } else {
        const out = fresh();
        await store.getDir(key, out);
        assert.equal(versionOf(out, 5), 'v1', 'the previous artifact still serves, whole');
      }
    }
    // What the crash left is unreferenced scratch space, and a later put of the key works.
    await store.putDir('deployments/d1/source', big);
    const out = fresh();
    await store.getDir('deployments/d1/source', out);
    assert.equal(versionOf(out, count), 'v2');
  });
});

function countFiles(dir: string): number {
  try {
    return readdirSync(dir, { recursive: true }).length;
  } catch {
    return 0;
  }
}

async function until(probe: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
