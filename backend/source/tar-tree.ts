// A directory as one gzipped tar stream, and back: the form the S3 artifact store keeps a tree in.
//
// Packing keeps contents, modes, mtimes (to the second: plain tar headers) and symlinks as links
// with their targets verbatim; owners are not kept. Unpacking is our own, on tar's parser, rather
// than tar's extractor: the extractor rewrites absolute symlink targets (a link to /etc/passwd
// would come back as etc/passwd), and an archive read from a bucket is input to distrust. Every
// entry must land inside the destination, and never through a symlink; anything else stops the
// extraction with an UnsafeArchiveError. Only the permission bits of a mode are kept: setuid,
// setgid and sticky bits are dropped, so an archive cannot plant a setuid program. Devices, FIFOs
// and other special entries are refused. With limits, the entries and the bytes they unpack to
// are counted as they come, and the extraction stops at the first entry over either.
import { createWriteStream } from 'node:fs';
import { chmod, link, lstat, lutimes, mkdir, realpath, symlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { create, Parser, type ReadEntry } from 'tar';
import { Tally, type TreeLimits } from './limits.ts';

export class UnsafeArchiveError extends Error {
  constructor(
    readonly entry: string,
    reason: string,
  ) {
    super(`The archive entry "${entry.slice(0, 200)}" was refused: ${reason}.`);
    this.name = 'UnsafeArchiveError';
  }
}

/** `dir` as a tar.gz byte stream. An unreadable file fails the stream rather than being left out. */
export function packDir(dir: string): Readable {
  return Readable.from(create({ cwd: dir, gzip: true, portable: true, strict: true }, ['.']));
}

interface Unpacking {
  root: string;
  /** The root with symlinks in its own path resolved, to compare realpath() results against. */
  realRoot: string;
  /** Directories known to be real directories inside root (never symlinks). */
  dirs: Set<string>;
  /** Modes and mtimes of directory entries, applied once everything inside them is written. */
  finish: { abs: string; mode: number; mtime?: Date }[];
  tally: Tally;
}

export interface UnpackOptions {
  limits?: TreeLimits;
  /** What the archive is, for the message when it is over a limit ("the artifact <key>"). */
  what?: string;
}

const TOO_LARGE_HINT = 'It was not unpacked; ask the operator to raise the limit if this deployment really needs more.';

/** Extracts a tar.gz stream into `dest`, an existing empty directory. */
export async function unpackInto(source: Readable, dest: string, options: UnpackOptions = {}): Promise<void> {
  const root = path.resolve(dest);
  const tally = new Tally(options.limits, options.what ?? 'the archive', TOO_LARGE_HINT);
  const state: Unpacking = { root, realRoot: await realpath(root), dirs: new Set([root]), finish: [], tally };
  const parser = new Parser({ strict: true });
  let failure: unknown;
  let current: ReadEntry | undefined;
  let writing: Promise<void> = Promise.resolve();
  // The parser hands over one entry at a time and waits for it to be read: entries are written in order.
  parser.on('entry', (entry: ReadEntry) => {
    writing = writing
      .then(async () => {
        if (failure !== undefined) return entry.resume();
        current = entry;
        await writeEntry(state, entry);
        current = undefined;
      })
      .catch((err: unknown) => {
        failure ??= err;
        entry.resume();
        parser.abort(err instanceof Error ? err : new Error(String(err)));
      });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      source.once('error', reject);
      parser.once('error', reject);
      parser.once('end', resolve);
      source.pipe(parser);
    });
  } catch (err) {
    failure ??= err;
    source.unpipe(parser);
    source.destroy();
    // A damaged archive leaves the entry being written without its end: stop that write too.
    current?.destroy(err instanceof Error ? err : new Error(String(err)));
  }
  await writing;
  if (failure !== undefined) throw failure;
  // Deepest first, so setting a directory's mtime is not undone by touching its parent's contents.
  for (const dir of state.finish.reverse()) {
    await chmod(dir.abs, dir.mode);
    if (dir.mtime) await utimes(dir.abs, dir.mtime, dir.mtime);
  }
}

/** The entry's path relative to the root ('' for the root itself); throws if it could leave it. */
function relativePath(raw: string): string {
  const p = raw.replace(/\/+$/, '');
  if (p.includes('\0')) throw new UnsafeArchiveError(raw, 'it contains a NUL byte');
  if (p.startsWith('/') || path.isAbsolute(p)) throw new UnsafeArchiveError(raw, 'it is an absolute path');
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.includes('..')) throw new UnsafeArchiveError(raw, 'it contains ".."');
  return parts.join('/');
}

/** Creates the missing directories down to `dir`, refusing to pass through anything but real directories. */
async function ensureDir(state: Unpacking, entry: string, dir: string): Promise<void> {
  const rel = path.relative(state.root, dir);
  let at = state.root;
  for (const part of rel === '' ? [] : rel.split(path.sep)) {
    at = path.join(at, part);
    if (state.dirs.has(at)) continue;
    const st = await lstat(at).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    if (!st) await mkdir(at, { mode: 0o700 });
    else if (!st.isDirectory() || st.isSymbolicLink())
      throw new UnsafeArchiveError(entry, `it would be written through ${path.relative(state.root, at)}, which is not a directory`);
    state.dirs.add(at);
  }
}

async function writeEntry(state: Unpacking, entry: ReadEntry): Promise<void> {
  const rel = relativePath(entry.path);
  const abs = path.join(state.root, rel);
  // Permission bits only: no setuid, setgid or sticky bit survives (docs/security.md, "Limits").
  const mode = (entry.mode ?? (entry.type === 'Directory' ? 0o755 : 0o644)) & 0o777;
  if (rel === '') {
    if (entry.type !== 'Directory') throw new UnsafeArchiveError(entry.path, 'only a directory can stand for the root');
    state.finish.push({ abs, mode, mtime: entry.mtime });
    entry.resume();
    return;
  }
  // The header's size, before a byte is written: what the entry unpacks to, not what it
  // compresses to. The root is not counted, as assertTreeWithin does not count it when packing.
  state.tally.add(entry.type === 'File' || entry.type === 'OldFile' || entry.type === 'ContiguousFile' ? (entry.size ?? 0) : 0);
  await ensureDir(state, entry.path, path.dirname(abs));
  switch (entry.type) {
    case 'Directory':
      await ensureDir(state, entry.path, abs);
      state.finish.push({ abs, mode, mtime: entry.mtime });
      entry.resume();
      return;
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
      // 'wx': an existing path (a symlink above all) is an error, never followed.
      await pipeline(entry, createWriteStream(abs, { flags: 'wx', mode: 0o600 }));
      await chmod(abs, mode);
      if (entry.mtime) await utimes(abs, entry.mtime, entry.mtime);
      return;
    case 'SymbolicLink':
      // The target is kept as written: a link is only followed by whoever reads through it later.
      await symlink(String(entry.linkpath ?? ''), abs);
      if (entry.mtime) await lutimes(abs, entry.mtime, entry.mtime);
      entry.resume();
      return;
    case 'Link': {
      const targetRel = relativePath(String(entry.linkpath ?? ''));
      const target = path.join(state.root, targetRel);
      // A hard link must name a file already extracted here, reached without any symlink.
      const real = await realpath(target).catch(() => null);
      const st = targetRel !== '' && real === path.join(state.realRoot, targetRel) ? await lstat(target) : null;
      if (!st?.isFile()) throw new UnsafeArchiveError(entry.path, 'it is a hard link to something that is not a file of this archive');
      await link(target, abs);
      entry.resume();
      return;
    }
    default:
      throw new UnsafeArchiveError(entry.path, `entries of type ${entry.type} are not stored`);
  }
}
