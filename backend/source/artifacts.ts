// The artifact store: how stages that run on different worker processes hand each other the
// source checkout and the build output (docs/architecture.md, "One deployment through the code").
// Never one worker's disk.
//
// The interface and the local implementation live here. LocalArtifactStore serves local mode,
// where every worker shares one data directory; production's store on S3-compatible object
// storage (Fly's Tigris) is S3ArtifactStore in s3-artifacts.ts.
import { randomUUID } from 'node:crypto';
import { cp, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { getConfig } from '../config.ts';
import { assertTreeWithin, STORE_HINT, type TreeLimits } from './limits.ts';

export interface ArtifactStore {
  /** Stores a copy of `dir` under `key`. Readers see the old artifact or the whole new one, never a part. */
  putDir(key: string, dir: string): Promise<void>;
  /** Copies the artifact into `dest`, which must not exist or be empty. Throws ArtifactNotFoundError. */
  getDir(key: string, dest: string): Promise<void>;
  has(key: string): Promise<boolean>;
  /** Removes the artifact `prefix` and every artifact under `prefix/` (whole path segments only). */
  remove(prefix: string): Promise<void>;
}

export class ArtifactNotFoundError extends Error {
  constructor(readonly key: string) {
    super(`The artifact ${key} does not exist (it was never stored, or it was removed).`);
    this.name = 'ArtifactNotFoundError';
  }
}

export class InvalidArtifactKeyError extends Error {
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`"${String(key).slice(0, 200)}" is not a valid artifact key: ${reason}.`);
    this.name = 'InvalidArtifactKeyError';
  }
}

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const REF_SUFFIX = '.ref';

/**
 * Keys are relative paths such as `deployments/<id>/source`. Each segment starts with a letter,
 * digit or underscore, so "..", "." and hidden names cannot occur and a key never leaves the root.
 */
export function checkArtifactKey(key: string): void {
  if (typeof key !== 'string' || key === '') throw new InvalidArtifactKeyError(key, 'it is empty');
  if (key.length > 512) throw new InvalidArtifactKeyError(key, 'it is longer than 512 characters');
  if (key.startsWith('/') || path.isAbsolute(key)) throw new InvalidArtifactKeyError(key, 'it must be a relative path');
  for (const segment of key.split('/')) {
    if (segment === '..' || segment === '.') throw new InvalidArtifactKeyError(key, '"." and ".." are not allowed');
    if (!SEGMENT.test(segment)) {
      throw new InvalidArtifactKeyError(key, 'each "/"-separated part must be letters, digits, ".", "_" or "-", starting with a letter, digit or "_"');
    }
    // Pointer files are named <key>.ref; a segment of that form would collide with one.
    if (segment.endsWith(REF_SUFFIX)) throw new InvalidArtifactKeyError(key, `a part may not end in "${REF_SUFFIX}"`);
  }
}

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException)?.code === 'ENOENT';

/**
 * Layout under root:
 *   tmp/<uuid>/            a put in progress (left behind only by a crash; never read)
 *   objects/<uuid>/        the contents of one complete artifact, never modified once there
 *   keys/<key>.ref         a small file naming the object a key points to
 * A put copies into tmp/, renames the finished copy into objects/, then replaces the key's
 * pointer file by a rename. Renames are atomic, so a key always names a complete copy, and a
 * crash at any point leaves at worst an unreferenced directory, never a half artifact.
 */
export class LocalArtifactStore implements ArtifactStore {
  readonly root: string;

  /** limits: caps on what one artifact may hold, checked before it is copied in. */
  constructor(
    root: string = path.join(getConfig().dataDir, 'artifacts'),
    private readonly limits?: TreeLimits,
  ) {
    this.root = path.resolve(root);
  }

  private refPath(key: string): string {
    return path.join(this.root, 'keys', `${key}${REF_SUFFIX}`);
  }

  private objectPath(id: string): string {
    return path.join(this.root, 'objects', id);
  }

  private async readRef(key: string): Promise<string | null> {
    try {
      const id = (await readFile(this.refPath(key), 'utf8')).trim();
      return /^[0-9a-f-]{36}$/.test(id) ? id : null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async putDir(key: string, dir: string): Promise<void> {
    checkArtifactKey(key);
    if (!(await stat(dir)).isDirectory()) throw new Error(`${dir} is not a directory`);
    await assertTreeWithin(dir, this.limits, `the artifact ${key}`, STORE_HINT);
    const id = randomUUID();
    const staging = path.join(this.root, 'tmp', id);
    await mkdir(path.join(this.root, 'tmp'), { recursive: true });
    await mkdir(path.join(this.root, 'objects'), { recursive: true });
    try {
      await copyTree(dir, staging);
      await rename(staging, this.objectPath(id));
    } catch (err) {
      await rm(staging, { recursive: true, force: true });
      throw err;
    }

    const ref = this.refPath(key);
    await mkdir(path.dirname(ref), { recursive: true });
    const previous = await this.readRef(key);
    const refTmp = `${ref}.${randomUUID()}.tmp`;
    try {
      await writeFile(refTmp, id);
      await rename(refTmp, ref);
    } catch (err) {
      await rm(refTmp, { force: true });
      await rm(this.objectPath(id), { recursive: true, force: true });
      throw err;
    }
    // A reader that picked the previous object mid-copy notices the pointer moved and retries.
    if (previous && previous !== id) await rm(this.objectPath(previous), { recursive: true, force: true });
  }

  async getDir(key: string, dest: string): Promise<void> {
    checkArtifactKey(key);
    await assertEmptyOrMissing(dest);
    await mkdir(path.dirname(path.resolve(dest)), { recursive: true });
    // A concurrent put or remove may delete the object being copied; the pointer tells us so.
    for (let attempt = 1; ; attempt += 1) {
      const id = await this.readRef(key);
      if (!id) throw new ArtifactNotFoundError(key);
      const staging = `${path.resolve(dest)}.partial-${randomUUID()}`;
      try {
        await copyTree(this.objectPath(id), staging);
        // Objects are deleted only after their pointer has moved, and ids are never reused: if
        // the pointer still names `id` now, nothing was deleted under the copy.
        if ((await this.readRef(key)) === id) {
          await rm(dest, { recursive: true, force: true }); // empty or missing, checked above
          await rename(staging, dest);
          return;
        }
      } catch (err) {
        await rm(staging, { recursive: true, force: true });
        if (!isMissing(err) || attempt >= 5) throw err;
        continue;
      }
      await rm(staging, { recursive: true, force: true });
      if (attempt >= 5) throw new Error(`The artifact ${key} kept changing while it was read.`);
    }
  }

  async has(key: string): Promise<boolean> {
    checkArtifactKey(key);
    const id = await this.readRef(key);
    if (!id) return false;
    return stat(this.objectPath(id)).then(
      (s) => s.isDirectory(),
      () => false,
    );
  }

  async remove(prefix: string): Promise<void> {
    checkArtifactKey(prefix);
    const refs = [this.refPath(prefix), ...(await listRefs(path.join(this.root, 'keys', prefix)))];
    for (const ref of refs) {
      const id = await readFile(ref, 'utf8').then(
        (text) => text.trim(),
        () => null,
      );
      // Pointer first: once it is gone no reader can start on the object.
      await rm(ref, { force: true });
      if (id && /^[0-9a-f-]{36}$/.test(id)) await rm(this.objectPath(id), { recursive: true, force: true });
    }
    await rm(path.join(this.root, 'keys', prefix), { recursive: true, force: true });
  }
}

// Symlinks are copied as they are (not followed, not rewritten to absolute paths): a checkout
// may contain a link to /etc/passwd, which must stay a link and never become a copy of the file.
function copyTree(from: string, to: string): Promise<void> {
  return cp(from, to, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true, errorOnExist: true, force: false });
}

export async function assertEmptyOrMissing(dir: string): Promise<void> {
  const entries = await readdir(dir).catch((err: unknown) => {
    if (isMissing(err)) return [];
    throw err;
  });
  if (entries.length > 0) throw new Error(`${dir} must be empty or not exist to receive an artifact.`);
}

async function listRefs(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((err: unknown) => {
    if (isMissing(err)) return [];
    throw err;
  });
  const found: string[] = [];
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await listRefs(full)));
    else if (entry.name.endsWith(REF_SUFFIX)) found.push(full);
  }
  return found;
}
