// Size caps on what a deployment carries between stages: the checkout, each artifact and each
// unpacking of one. git packs compress well enough that a repository of a few hundred kilobytes
// can hold gigabytes of zeros, and an archive read back from a bucket can claim anything; both are
// measured and refused before they fill a worker's disk. The defaults (config.ts) are far above
// what a real app needs, so only a bomb or a mistake meets them.
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { SizeLimits } from '../config.ts';

export interface TreeLimits {
  /** The most bytes of file contents. */
  maxBytes: number;
  /** The most entries: files, directories and links. */
  maxEntries: number;
  /** The settings that hold the two limits, named in the refusal. */
  settings: { bytes: string; entries: string };
}

/** A tree or archive over a limit. Retrying cannot help: the input has to shrink. */
export class TooLargeError extends Error {
  /** Read by the pipeline (backend/lib/errors.ts isPermanent): not retried. */
  readonly permanent = true;

  constructor(
    readonly what: string,
    readonly limit: 'bytes' | 'entries',
    message: string,
  ) {
    super(message);
    this.name = 'TooLargeError';
  }
}

/** What a refused store says after naming the limit. */
export const STORE_HINT = 'Nothing was stored; leave build output and large generated files out of the repository, or ask the operator to raise the limit.';

const UNITS = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 2147483648 → "2 GiB", 2469606195 → "2.3 GiB". */
export function formatBytes(n: number): string {
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const shown = unit === 0 || Number.isInteger(value) ? String(Math.round(value)) : value.toFixed(1).replace(/\.0$/, '');
  return `${shown} ${UNITS[unit]}`;
}

/** Counts as "250,000" whatever the process's locale. */
export const formatCount = (n: number) => n.toLocaleString('en-US');

/**
 * The refusal for `what` (such as "the repository"). `total` is null when counting stopped at the
 * limit, so only "more than" is known. The first sentence names the limit and its setting.
 */
export function tooLarge(what: string, limits: TreeLimits, kind: 'bytes' | 'entries', total: number | null, hint: string): TooLargeError {
  const What = `${what.charAt(0).toUpperCase()}${what.slice(1)}`;
  const setting = kind === 'bytes' ? limits.settings.bytes : limits.settings.entries;
  const limit = kind === 'bytes' ? formatBytes(limits.maxBytes) : formatCount(limits.maxEntries);
  const first =
    kind === 'bytes'
      ? total === null
        ? `The files of ${what} add up to more than ${limit}, the limit (${setting}).`
        : `The files of ${what} add up to ${formatBytes(total)}, over the ${limit} limit (${setting}).`
      : total === null
        ? `${What} holds more than ${limit} files and directories, the limit (${setting}).`
        : `${What} holds ${formatCount(total)} files and directories, over the ${limit} limit (${setting}).`;
  const message = `${first} ${hint}`;
  return new TooLargeError(what, kind, message);
}

/** Adds up entries and bytes as they come, and throws the moment either passes its limit. */
export class Tally {
  bytes = 0;
  entries = 0;

  constructor(
    private readonly limits: TreeLimits | undefined,
    private readonly what: string,
    private readonly hint: string,
  ) {}

  add(bytes: number): void {
    this.entries += 1;
    this.bytes += bytes;
    if (!this.limits) return;
    if (this.entries > this.limits.maxEntries) throw tooLarge(this.what, this.limits, 'entries', null, this.hint);
    if (this.bytes > this.limits.maxBytes) throw tooLarge(this.what, this.limits, 'bytes', null, this.hint);
  }
}

/**
 * Walks `dir` without following symlinks and throws once it holds more than the limits allow.
 * Stops at the first limit passed, so a huge tree is not walked to its end.
 */
export async function assertTreeWithin(dir: string, limits: TreeLimits | undefined, what: string, hint: string): Promise<void> {
  if (!limits) return;
  const tally = new Tally(limits, what, hint);
  const walk = async (at: string): Promise<void> => {
    for (const entry of await readdir(at, { withFileTypes: true })) {
      const full = path.join(at, entry.name);
      if (entry.isDirectory()) {
        tally.add(0);
        await walk(full);
      } else {
        tally.add(entry.isFile() ? (await lstat(full)).size : 0);
      }
    }
  };
  await walk(dir);
}

/** The caps on a deployment's checkout, from the settings. */
export function sourceLimits(limits: SizeLimits): TreeLimits {
  return { maxBytes: limits.sourceBytes, maxEntries: limits.sourceFiles, settings: { bytes: 'RHONE_MAX_SOURCE_BYTES', entries: 'RHONE_MAX_SOURCE_FILES' } };
}

/** The caps on one artifact (the stored source, a local image), from the settings. */
export function artifactLimits(limits: SizeLimits): TreeLimits {
  return {
    maxBytes: limits.artifactBytes,
    maxEntries: limits.artifactFiles,
    settings: { bytes: 'RHONE_MAX_ARTIFACT_BYTES', entries: 'RHONE_MAX_ARTIFACT_FILES' },
  };
}
