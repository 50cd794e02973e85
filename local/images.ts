// The local image store. A local image is a directory, `${dataDir}/images/<name>/<tag>/`, holding
// the built app and a manifest (rhone-image.json) with its start command. Machines refer to it as
// `rhone-local/<name>:<tag>`. The local builder writes images the same way importImage does.
import { randomBytes } from 'node:crypto';
import { cp, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { assertTreeWithin, STORE_HINT, type TreeLimits } from '../backend/source/limits.ts';

export const IMAGE_PREFIX = 'rhone-local/';
export const IMAGE_MANIFEST = 'rhone-image.json';

export interface ImageManifest {
  /** argv of the process a machine runs, started with the image directory as cwd. */
  cmd: string[];
  env?: Record<string, string>;
  createdAt: string;
}

export interface StoreOptions {
  cmd: string[];
  env?: Record<string, string>;
  /** Caps on what the image may hold (RHONE_MAX_ARTIFACT_*); checked before it replaces anything. */
  limits?: TreeLimits;
}

export interface LocalImage {
  ref: string;
  name: string;
  tag: string;
  dir: string;
  manifest: ImageManifest;
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export class ImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageError';
  }
}

/** `rhone-local/<name>:<tag>` → {name, tag}; the tag defaults to "latest" as Docker's does. */
export function parseImageRef(image: string): { name: string; tag: string } {
  if (!image.startsWith(IMAGE_PREFIX)) {
    throw new ImageError(`image "${image}" is not a local image: the local runtime runs only ${IMAGE_PREFIX}<name>:<tag> images`);
  }
  const rest = image.slice(IMAGE_PREFIX.length);
  const colon = rest.lastIndexOf(':');
  const name = colon === -1 ? rest : rest.slice(0, colon);
  const tag = colon === -1 ? 'latest' : rest.slice(colon + 1);
  if (!NAME.test(name) || !TAG.test(tag)) throw new ImageError(`image "${image}" is not a valid ${IMAGE_PREFIX}<name>:<tag> reference`);
  return { name, tag };
}

export function imageRef(name: string, tag: string): string {
  return `${IMAGE_PREFIX}${name}:${tag}`;
}

/** The directory an image lives in (whether or not it exists). */
export function imageDir(dataDir: string, image: string): string {
  const { name, tag } = parseImageRef(image);
  return path.join(dataDir, 'images', name, tag);
}

/** Writes the manifest that makes a directory a runnable image. */
export async function writeImageManifest(dir: string, manifest: { cmd: string[]; env?: Record<string, string> }): Promise<ImageManifest> {
  if (!Array.isArray(manifest.cmd) || manifest.cmd.length === 0 || !manifest.cmd.every((a) => typeof a === 'string')) {
    throw new ImageError('an image needs a start command: cmd must be a non-empty array of strings');
  }
  const full: ImageManifest = { cmd: manifest.cmd, ...(manifest.env ? { env: manifest.env } : {}), createdAt: new Date().toISOString() };
  await writeFile(path.join(dir, IMAGE_MANIFEST), `${JSON.stringify(full, null, 2)}\n`);
  return full;
}

/**
 * Copies sourceDir into the store as `rhone-local/<name>:<tag>`, replacing an image of the same
 * tag. The copy is assembled beside its final place and renamed in, so a machine never boots a
 * half-written image.
 */
export async function importImage(dataDir: string, name: string, tag: string, sourceDir: string, options: StoreOptions): Promise<LocalImage> {
  const ref = imageRef(name, tag);
  const dir = imageDir(dataDir, ref);
  await assertTreeWithin(sourceDir, options.limits, `the image ${ref}`, STORE_HINT);
  const staging = `${dir}.tmp-${randomBytes(4).toString('hex')}`;
  await mkdir(path.dirname(dir), { recursive: true });
  try {
    await cp(sourceDir, staging, { recursive: true });
    const manifest = await writeImageManifest(staging, options);
    await swapIn(staging, dir);
    return { ref, name, tag, dir, manifest };
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Moves a finished build directory into the store as `rhone-local/<name>:<tag>`, replacing an
 * image of the same tag whole. A rename, not a copy: the local builder assembles the image under
 * dataDir, so storing it costs nothing however big node_modules is. fromDir is gone afterwards.
 */
export async function storeImage(dataDir: string, name: string, tag: string, fromDir: string, options: StoreOptions): Promise<LocalImage> {
  const ref = imageRef(name, tag);
  const dir = imageDir(dataDir, ref);
  await mkdir(path.dirname(dir), { recursive: true });
  const manifest = await writeImageManifest(fromDir, options);
  // Measured as it would be stored, manifest included; the image it would replace is untouched.
  await assertTreeWithin(fromDir, options.limits, `the image ${ref}`, STORE_HINT);
  try {
    await swapIn(fromDir, dir);
  } catch (err) {
    // Another filesystem (EXDEV): fall back to a copy assembled beside the image's place.
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    const image = await importImage(dataDir, name, tag, fromDir, options);
    await rm(fromDir, { recursive: true, force: true });
    return image;
  }
  return { ref, name, tag, dir, manifest };
}

/** Renames staging to dir, replacing whatever dir held, so a reader sees the old image or the new one. */
async function swapIn(staging: string, dir: string): Promise<void> {
  const old = `${dir}.old-${randomBytes(4).toString('hex')}`;
  const replaced = await rename(dir, old).then(
    () => true,
    () => false,
  );
  try {
    await rename(staging, dir);
  } catch (err) {
    if (replaced) await rename(old, dir).catch(() => undefined);
    throw err;
  }
  if (replaced) await rm(old, { recursive: true, force: true });
}

/** Reads an image's manifest; an ImageError says what is missing when it cannot be run. */
export async function readImage(dataDir: string, image: string): Promise<LocalImage> {
  const { name, tag } = parseImageRef(image);
  const dir = imageDir(dataDir, image);
  let raw: string;
  try {
    raw = await readFile(path.join(dir, IMAGE_MANIFEST), 'utf8');
  } catch {
    throw new ImageError(`image "${image}" was not found in the local image store (${dir}); build or import it first`);
  }
  let manifest: ImageManifest;
  try {
    manifest = JSON.parse(raw) as ImageManifest;
  } catch {
    throw new ImageError(`image "${image}" has an unreadable ${IMAGE_MANIFEST}`);
  }
  if (!Array.isArray(manifest.cmd) || manifest.cmd.length === 0) throw new ImageError(`image "${image}" has no start command (cmd) in ${IMAGE_MANIFEST}`);
  return { ref: image, name, tag, dir, manifest };
}
