// The local Machines API's token: random, one per install, in a file only its owner can read.
// The API runs commands on this machine (a machine's init.exec), so "any Bearer token", as it
// once accepted, let any page that reached 127.0.0.1 (DNS rebinding) run code here. Rhone's own
// processes (the runtime, the api and the worker, all started by `npm start` as the same user)
// read the file; whoever comes first creates it.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const MACHINES_TOKEN_FILE = 'machines-api.token';

export class MachinesTokenError extends Error {
  readonly code = 'machines_token_unsafe';
}

export function machinesTokenPath(dataDir: string): string {
  return path.join(path.resolve(dataDir), MACHINES_TOKEN_FILE);
}

function readToken(file: string): string {
  // Read before checking: a file that other users can read may already have leaked.
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077) {
    throw new MachinesTokenError(
      `The local Machines API token file ${file} can be read by other users (mode ${mode.toString(8)}): delete it and start Rhone again to make a new one.`,
    );
  }
  const token = readFileSync(file, 'utf8').trim();
  if (token.length < 32)
    throw new MachinesTokenError(`The local Machines API token file ${file} is empty or cut short: delete it and start Rhone again to make a new one.`);
  return token;
}

const known = new Map<string, string>();

/**
 * The install's token, created on first use. Created without a window in which it is readable
 * by others or half written: written to a private temp file opened O_CREAT|O_EXCL with mode 0600,
 * then published with link(2), which fails rather than replace a file another process published
 * first. Remembered per file: deleting it takes a restart of every Rhone process.
 */
export function machinesToken(dataDir: string): string {
  const file = machinesTokenPath(dataDir);
  const cached = known.get(file);
  if (cached) return cached;
  let token: string;
  try {
    token = readToken(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const temp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}`;
    writeFileSync(temp, randomBytes(32).toString('base64url'), { flag: 'wx', mode: 0o600 });
    try {
      linkSync(temp, file);
    } catch (linkErr) {
      if ((linkErr as NodeJS.ErrnoException).code !== 'EEXIST') throw linkErr;
    } finally {
      unlinkSync(temp);
    }
    token = readToken(file);
  }
  known.set(file, token);
  return token;
}

/** Constant time whatever the lengths: the digests are compared, never the tokens. */
export function tokenMatches(sent: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(sent), digest(expected));
}
