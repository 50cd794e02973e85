// The artifact store's behaviour, the same for both implementations: the directory store of local
// mode, and the S3 store of production (against an in-test S3 that checks every request's
// signature, spoken to by the real AWS SDK). Then what only one of them has: the local store's
// default place, and the S3 store's listing pages and the archives it refuses to unpack.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { Header } from 'tar';
import { ArtifactNotFoundError, InvalidArtifactKeyError, LocalArtifactStore, type ArtifactStore } from '../backend/source/artifacts.ts';
import { S3ArtifactStore } from '../backend/source/s3-artifacts.ts';
import { UnsafeArchiveError } from '../backend/source/tar-tree.ts';
import { TooLargeError, type TreeLimits } from '../backend/source/limits.ts';
import { getConfig } from '../backend/config.ts';
import { artifactStore } from '../jobs/artifacts.ts';
import { FakeS3 } from './support/fake-s3.ts';
import { until } from './support/until.ts';

/** A directory of `count` files whose first line is `version`, so a mixed or partial copy shows. */
function makeVersion(dir: string, version: string, count: number, size = 64, random = false): string {
  mkdirSync(path.join(dir, 'nested'), { recursive: true });
  for (let i = 0; i < count; i += 1) {
    const head = Buffer.from(`${version}\n`);
    // Random bytes do not compress: the S3 store's archive is then as big as the files.
    const rest = random ? randomBytes(Math.max(0, size - head.length)) : Buffer.alloc(Math.max(0, size - head.length), '.');
    writeFileSync(path.join(dir, i % 2 ? 'nested' : '', `f${i}.txt`), Buffer.concat([head, rest]));
  }
  return dir;
}

/** The single version every file of `dir` holds, or a description of what is wrong. */
function versionOf(dir: string, count: number): string {
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((n) => n.endsWith('.txt'));
  if (files.length !== count) return `partial: ${files.length}/${count} files`;
  const versions = new Set(files.map((n) => readFileSync(path.join(dir, n), 'latin1').split('\n')[0]));
  return versions.size === 1 ? [...versions][0] : `mixed: ${[...versions].join(',')}`;
}

/** What the shared cases need to know about one implementation. */
interface Harness {
  store: ArtifactStore;
  /** How many complete artifacts the store holds. */
  stored(): number;
  /** Whether the store received any write at all. */
  wroteAnything(): boolean;
  /** The environment that makes artifacts-put-child.ts use this store. */
  childStore: string;
  /** Starts watching writes; the probe says when a put is under way but cannot have finished. */
  watchWrites(): () => boolean;
  /** How far apart a file's mtime may be after a round trip. */
  mtimeToleranceMs: number;
  close(): Promise<void>;
}

const KINDS: { name: string; setup(tmp: string): Promise<Harness> }[] = [
  {
    name: 'local',
    async setup(tmp) {
      const store = new LocalArtifactStore(path.join(tmp, 'store'));
      return {
        store,
        stored: () => countDir(path.join(store.root, 'objects')),
        wroteAnything: () => existsSync(path.join(store.root, 'keys')),
        childStore: JSON.stringify({ local: store.root }),
        watchWrites() {
          const before = countFiles(store.root);
          return () => countFiles(store.root) > before + 20; // the copy is under way
        },
        mtimeToleranceMs: 1, // utimes keeps milliseconds
        close: async () => undefined,
      };
    },
  },
  {
    name: 's3',
    async setup() {
      const fake = await FakeS3.start({ maxKeys: 2 });
      const store = new S3ArtifactStore(fake.settings());
      return {
        store,
        stored: () => fake.keys().length,
        wroteAnything: () => Object.keys(fake.ops).some((op) => op !== 'GetObject' && op !== 'HeadObject' && op !== 'ListObjectsV2'),
        childStore: JSON.stringify({ s3: fake.settings() }),
        watchWrites() {
          // The first part is held for a while, so the writer is certainly killed mid-upload.
          fake.delays.UploadPart = 10_000;
          const before = fake.ops.UploadPart ?? 0;
          return () => {
            if ((fake.ops.UploadPart ?? 0) === before) return false;
            delete fake.delays.UploadPart; // for the puts after this one
            return true;
          };
        },
        mtimeToleranceMs: 1000, // tar headers keep whole seconds
        async close() {
          store.destroy();
          await fake.close();
        },
      };
    },
  },
];

for (const kind of KINDS) {
  describe(`artifact store (${kind.name})`, function () {
    this.timeout(60_000);
    let tmp: string;
    let h: Harness;
    let store: ArtifactStore;
    let n = 0;
    const fresh = () => path.join(tmp, `out-${(n += 1)}`);

    beforeEach(async () => {
      tmp = mkdtempSync(path.join(os.tmpdir(), 'rhone-artifacts-'));
      h = await kind.setup(tmp);
      store = h.store;
    });
    afterEach(async () => {
      await h.close();
      rmSync(tmp, { recursive: true, force: true });
    });

    it('gives back what was put: contents, modes, timestamps, and symlinks as links', async () => {
      const src = path.join(tmp, 'src');
      mkdirSync(path.join(src, 'bin'), { recursive: true });
      mkdirSync(path.join(src, 'locked'));
      writeFileSync(path.join(src, 'package.json'), '{"name":"app"}');
      writeFileSync(path.join(src, 'bin', 'start'), '#!/bin/sh\necho hi\n');
      chmodSync(path.join(src, 'bin', 'start'), 0o755);
      writeFileSync(path.join(src, 'locked', 'secret.txt'), 'mine');
      chmodSync(path.join(src, 'locked', 'secret.txt'), 0o600);
      chmodSync(path.join(src, 'locked'), 0o750);
      symlinkSync('bin/start', path.join(src, 'run'));
      symlinkSync('/etc/passwd', path.join(src, 'escape'));

      await store.putDir('deployments/d1/source', src);
      assert.equal(await store.has('deployments/d1/source'), true);
      const out = fresh();
      await store.getDir('deployments/d1/source', out);

      assert.equal(readFileSync(path.join(out, 'package.json'), 'utf8'), '{"name":"app"}');
      assert.equal(statSync(path.join(out, 'bin', 'start')).mode & 0o777, 0o755);
      assert.equal(statSync(path.join(out, 'locked', 'secret.txt')).mode & 0o777, 0o600);
      assert.equal(statSync(path.join(out, 'locked')).mode & 0o777, 0o750);
      assert.equal(readFileSync(path.join(out, 'locked', 'secret.txt'), 'utf8'), 'mine');
      // Build tools compare mtimes; the copy keeps them.
      const drift = Math.abs(statSync(path.join(out, 'package.json')).mtimeMs - statSync(path.join(src, 'package.json')).mtimeMs);
      assert.ok(drift < h.mtimeToleranceMs, `mtime moved by ${drift} ms`);
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
      assert.equal(h.stored(), 1, 'the old copy was deleted');
    });

    it('removes a prefix by whole path segments, however many artifacts it holds', async () => {
      const dir = makeVersion(path.join(tmp, 'v1'), 'v1', 2);
      const under = ['deployments/d1/source', 'deployments/d1/image', ...[0, 1, 2, 3, 4].map((i) => `deployments/d1/builds/b${i}`)];
      for (const key of [...under, 'deployments/d12/source', 'deployments/d1']) await store.putDir(key, dir);
      await store.remove('deployments/d1');
      for (const key of ['deployments/d1', ...under]) assert.equal(await store.has(key), false, key);
      assert.equal(await store.has('deployments/d12/source'), true, 'd12 is not under d1');
      assert.equal(h.stored(), 1);
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
      assert.equal(h.wroteAnything(), false, 'nothing was written');
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
      assert.deepEqual(
        seen.filter((v) => v !== 'v1' && v !== 'v2'),
        [],
      );
    });

    it('a writer killed mid-put leaves no artifact, or the previous one intact', async function () {
      const count = 1500;
      const big = makeVersion(path.join(tmp, 'big'), 'v2', count, 16_384, true);
      await store.putDir('deployments/d2/source', makeVersion(path.join(tmp, 'v1'), 'v1', 5));

      for (const key of ['deployments/d1/source', 'deployments/d2/source']) {
        const started = h.watchWrites();
        const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./artifacts-put-child.ts', import.meta.url)), key, big], {
          stdio: 'inherit',
          env: { ...process.env, ARTIFACT_STORE: h.childStore },
        });
        const exited = new Promise((resolve) => child.once('exit', resolve));
        // Kill it once its write is under way, before it can finish.
        await Promise.race([
          until('the writer to start writing', started, { timeoutMs: 20_000, everyMs: 2 }),
          exited.then(() => assert.fail('the writer finished before it could be killed')),
        ]);
        child.kill('SIGKILL');
        await exited;

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
}

describe('artifact store limits', function () {
  this.timeout(30_000);
  let tmp: string;
  beforeEach(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'rhone-artifact-limits-'));
  });
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));

  it('refuses to store a tree with more entries or bytes than the limits, in both stores', async () => {
    const fake = await FakeS3.start();
    const stores: [string, ArtifactStore][] = [
      ['local', new LocalArtifactStore(path.join(tmp, 'store'), LIMITS)],
      ['s3', new S3ArtifactStore(fake.settings(), { limits: LIMITS })],
    ];
    try {
      const many = makeVersion(path.join(tmp, 'many'), 'v1', 6);
      const big = path.join(tmp, 'big');
      mkdirSync(big);
      writeFileSync(path.join(big, 'zeros'), Buffer.alloc(2 * 1024 * 1024));
      for (const [name, store] of stores) {
        await assert.rejects(store.putDir('a/many', many), (err: Error) => err instanceof TooLargeError && /RHONE_MAX_ARTIFACT_FILES/.test(err.message), name);
        await assert.rejects(
          store.putDir('a/big', big),
          (err: Error) => err instanceof TooLargeError && err.message.startsWith('The files of the artifact a/big add up to more than 1 MiB'),
          name,
        );
        assert.equal(await store.has('a/many'), false, name);
        assert.equal(await store.has('a/big'), false, name);
      }
      assert.equal(Object.keys(fake.ops).filter((op) => op !== 'HeadObject').length, 0, 'nothing was sent to the bucket');
      const ok = makeVersion(path.join(tmp, 'ok'), 'v1', 2);
      for (const [name, store] of stores)
        await store.putDir('a/ok', ok).then(
          () => undefined,
          (err: Error) => assert.fail(`${name}: ${err.message}`),
        );
    } finally {
      (stores[1][1] as S3ArtifactStore).destroy();
      await fake.close();
    }
  });
});

describe('artifact store (local only)', () => {
  it('lives under the data directory by default', () => {
    assert.equal(new LocalArtifactStore().root, path.join(getConfig().dataDir, 'artifacts'));
  });
});

describe('artifact store (S3 only)', function () {
  this.timeout(30_000);
  let fake: FakeS3;
  let store: S3ArtifactStore;
  let tmp: string;

  beforeEach(async () => {
    fake = await FakeS3.start({ maxKeys: 3 });
    store = new S3ArtifactStore(fake.settings());
    tmp = mkdtempSync(path.join(os.tmpdir(), 'rhone-s3-artifacts-'));
  });
  afterEach(async () => {
    store.destroy();
    await fake.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('is what the workers use once a bucket is configured, and the directory store otherwise', () => {
    const config = getConfig();
    assert.ok(artifactStore({ ...config, artifacts: { s3: fake.settings() } }) instanceof S3ArtifactStore);
    assert.ok(artifactStore({ ...config, artifacts: {} }) instanceof LocalArtifactStore);
  });

  it('keeps one gzipped tar per artifact, and removes a prefix across listing pages', async () => {
    const dir = makeVersion(path.join(tmp, 'v1'), 'v1', 2);
    const keys = Array.from({ length: 10 }, (_, i) => `deployments/d1/part-${i}`);
    for (const key of [...keys, 'deployments/d1', 'deployments/d2/source']) await store.putDir(key, dir);
    assert.equal(fake.keys().length, 12);
    assert.ok(fake.keys().every((k) => k.endsWith('.tar.gz')));
    assert.deepEqual([...fake.body('deployments/d2/source.tar.gz')!.subarray(0, 2)], [0x1f, 0x8b], 'gzip');

    await store.remove('deployments/d1');
    assert.deepEqual(fake.keys(), ['deployments/d2/source.tar.gz']);
    assert.ok((fake.ops.ListObjectsV2 ?? 0) >= 4, `10 keys in pages of 3 take 4 listings, not ${fake.ops.ListObjectsV2}`);
    assert.equal(fake.unauthorized, 0, 'every request was signed with the configured key');
  });

  it('refuses archives whose entries would land outside the destination, writing nothing', async () => {
    const cases: [string, TarEntry[]][] = [
      [
        'parent',
        [
          { path: 'ok.txt', body: 'fine' },
          { path: '../evil.txt', body: 'pwned' },
        ],
      ],
      ['nested parent', [{ path: 'a/../../evil.txt', body: 'pwned' }]],
      ['absolute', [{ path: '/tmp/evil.txt', body: 'pwned' }]],
      [
        'through a symlink',
        [
          { path: 'link', type: 'SymbolicLink', linkpath: tmp },
          { path: 'link/evil.txt', body: 'pwned' },
        ],
      ],
      ['hard link out', [{ path: 'hard', type: 'Link', linkpath: '../victim.txt' }]],
      ['device', [{ path: 'dev', type: 'CharacterDevice' }]],
    ];
    writeFileSync(path.join(tmp, 'victim.txt'), 'untouched');
    for (const [name, entries] of cases) {
      fake.put(store.objectKey(`bad/${name.replace(/ /g, '-')}`), tarGz(entries));
      const dest = path.join(tmp, 'out', name.replace(/ /g, '-'));
      await assert.rejects(store.getDir(`bad/${name.replace(/ /g, '-')}`, dest), UnsafeArchiveError, name);
      assert.equal(existsSync(dest), false, `${name}: the destination was not created`);
    }
    assert.equal(existsSync(path.join(tmp, 'evil.txt')), false);
    assert.equal(existsSync('/tmp/evil.txt') && readFileSync('/tmp/evil.txt', 'utf8') === 'pwned', false);
    assert.equal(readFileSync(path.join(tmp, 'victim.txt'), 'utf8'), 'untouched');
    assert.deepEqual(readdirSync(path.join(tmp, 'out')), [], 'no partial extraction is left behind');
  });

  it('unpacks files and directories without their setuid, setgid and sticky bits', async () => {
    fake.put(
      store.objectKey('modes'),
      tarGz([
        { path: 'bin', type: 'Directory', mode: 0o3775 },
        { path: 'bin/su', body: '#!/bin/sh\n', mode: 0o4755 },
        { path: 'bin/sg', body: '#!/bin/sh\n', mode: 0o2711 },
        { path: 'plain', body: 'x', mode: 0o640 },
      ]),
    );
    const dest = path.join(tmp, 'out');
    await store.getDir('modes', dest);
    const mode = (name: string) => statSync(path.join(dest, name)).mode & 0o7777;
    assert.equal(mode('bin/su').toString(8), '755');
    assert.equal(mode('bin/sg').toString(8), '711');
    assert.equal(mode('bin').toString(8), '775');
    assert.equal(mode('plain').toString(8), '640');
  });

  it('refuses an archive with more entries or more bytes than the limits, writing nothing', async () => {
    const limited = new S3ArtifactStore(fake.settings(), { limits: LIMITS });
    try {
      fake.put(store.objectKey('many'), tarGz(Array.from({ length: 6 }, (_, i) => ({ path: `f${i}.txt`, body: 'x' }))));
      const dest = path.join(tmp, 'out');
      await assert.rejects(
        limited.getDir('many', dest),
        (err: Error) => err instanceof TooLargeError && /more than 5 files and directories, the limit \(RHONE_MAX_ARTIFACT_FILES\)/.test(err.message),
      );
      assert.equal(existsSync(dest), false);
      // 2 MiB of two bits of entropy per byte gzips to well under the 1 MiB limit: the bytes are
      // counted as unpacked, not as stored. (tar itself stops ratios over 1000:1, not this.)
      const body = Buffer.from(randomBytes(2 * 1024 * 1024).map((b) => 0x41 + (b & 3)));
      fake.put(store.objectKey('bomb'), tarGz([{ path: 'packed', body }]));
      assert.ok(fake.body(store.objectKey('bomb'))!.length < 1024 * 1024);
      await assert.rejects(
        limited.getDir('bomb', dest),
        (err: Error) =>
          err instanceof TooLargeError &&
          err.message.startsWith('The files of the artifact bomb add up to more than 1 MiB, the limit (RHONE_MAX_ARTIFACT_BYTES)'),
      );
      assert.equal(existsSync(dest), false);
      assert.deepEqual(readdirSync(tmp), [], 'no staging directory is left');
    } finally {
      limited.destroy();
    }
  });

  it('fails on a damaged archive instead of hanging or leaving half a tree', async () => {
    await store.putDir('a/b', makeVersion(path.join(tmp, 'v1'), 'v1', 20, 16_384, true));
    const whole = fake.body(store.objectKey('a/b'))!;
    for (const damaged of [whole.subarray(0, whole.length - 20_000), Buffer.from('not a tarball at all')]) {
      fake.put(store.objectKey('a/b'), damaged);
      const dest = path.join(tmp, 'out');
      await assert.rejects(store.getDir('a/b', dest));
      assert.equal(existsSync(dest), false);
    }
    assert.deepEqual(
      readdirSync(tmp).filter((n) => n.startsWith('out')),
      [],
      'no staging directory is left',
    );
  });

  it('fails plainly on a bucket that refuses its credentials', async () => {
    const wrong = new S3ArtifactStore(fake.settings({ secretAccessKey: 'not-the-secret' }));
    try {
      await assert.rejects(
        wrong.putDir('a/b', makeVersion(path.join(tmp, 'v1'), 'v1', 1)),
        (err: Error & { $metadata?: { httpStatusCode?: number } }) => err.$metadata?.httpStatusCode === 403,
      );
      assert.equal(fake.keys().length, 0);
      assert.ok(fake.unauthorized > 0);
    } finally {
      wrong.destroy();
    }
  });
});

interface TarEntry {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice';
  body?: string | Buffer;
  linkpath?: string;
  mode?: number;
}

const LIMITS: TreeLimits = { maxBytes: 1024 * 1024, maxEntries: 5, settings: { bytes: 'RHONE_MAX_ARTIFACT_BYTES', entries: 'RHONE_MAX_ARTIFACT_FILES' } };

/** A tar.gz built by hand, since tar itself will not write such entries. */
function tarGz(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const header = Buffer.alloc(512);
    new Header({ path: e.path, type: e.type ?? 'File', size: body.length, mode: e.mode ?? 0o644, mtime: new Date(), linkpath: e.linkpath }).encode(header, 0);
    blocks.push(header, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

function countDir(dir: string): number {
  try {
    return readdirSync(dir).length;
  } catch {
    return 0;
  }
}

function countFiles(dir: string): number {
  try {
    return readdirSync(dir, { recursive: true }).length;
  } catch {
    return 0;
  }
}
