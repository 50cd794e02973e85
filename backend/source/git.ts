// The source side of a deployment: turn a branch into a pinned commit, then fetch exactly that
// commit. Both run the git CLI through git-process.ts, which keeps credentials out of argv, URLs
// and .git/config. Every failure is a SourceError whose message a user can act on.
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { getConfig } from '../config.ts';
import { GitUnavailableError, makeRedactor, runGit, type GitCredentials, type GitResult } from './git-process.ts';
import { tooLarge, type TreeLimits } from './limits.ts';
import { checkPublicRemote, pinConfig, UnsafeRemoteError } from './remote-guard.ts';

export type { GitCredentials } from './git-process.ts';

export type SourceErrorCode =
  | 'invalid_url'
  | 'invalid_ref'
  | 'ref_not_found'
  | 'commit_not_found'
  | 'repo_not_found'
  | 'auth_failed'
  | 'unreachable'
  | 'timeout'
  | 'canceled'
  | 'too_large'
  | 'blocked_host'
  | 'git_failed';

/** Why the source could not be had. `message` is shown to the user and never holds a secret. */
export class SourceError extends Error {
  constructor(
    readonly code: SourceErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SourceError';
  }

  /** Worth another attempt: the network or the host failed, not the repository or the request. */
  get transient(): boolean {
    return this.code === 'unreachable' || this.code === 'timeout' || this.code === 'git_failed';
  }

  /** What the pipeline reads (backend/lib/errors.ts isPermanent): anything but a transient failure is the source's fault. */
  get permanent(): boolean {
    return !this.transient;
  }
}

export interface GitCallOptions {
  credentials?: GitCredentials;
  signal?: AbortSignal;
  /** Kill git after this long. Defaults: 60 s to resolve a ref, 10 min to fetch. */
  timeoutMs?: number;
  /**
   * The URL is a user's, in production: connect only if its host is public, to the addresses
   * that were checked, and follow no redirect (remote-guard.ts). resolveSource decides.
   */
  publicOnly?: boolean;
}

export interface FetchCommitInput extends GitCallOptions {
  url: string;
  sha: string;
  /** The workspace. Whatever it holds is removed first, so a retried attempt starts clean. */
  dir: string;
  log?: (line: string) => void;
  /** Caps on the checkout (RHONE_MAX_SOURCE_*), measured from the commit's tree before checkout. */
  limits?: TreeLimits;
}

export interface FetchedCommit {
  sha: string;
  /** Subject and body. */
  message: string;
  /** "Name <email>". */
  author?: string;
}

const RESOLVE_TIMEOUT_MS = 60_000;
const FETCH_TIMEOUT_MS = 10 * 60_000;
const FULL_SHA = /^[0-9a-f]{40}$/i;

/**
 * Transports a repository URL may use. file:// only in local mode (a production worker must not
 * read its own disk on a user's behalf) and plain http only there too, so a token never crosses
 * the network in clear. ssh is not offered: credentials are tokens sent over https.
 */
function allowedProtocols(): string[] {
  return getConfig().isLocal ? ['https', 'http', 'file'] : ['https'];
}

/** The URL as it may appear in a message: never with a user name or password. */
function shown(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return '(an invalid URL)';
  }
}

function checkUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new SourceError('invalid_url', `"${url.slice(0, 200)}" is not a repository URL; use https://host/owner/repo.git.`);
  }
  const scheme = parsed.protocol.replace(/:$/, '');
  const allowed = allowedProtocols();
  if (!allowed.includes(scheme)) {
    throw new SourceError('invalid_url', `${scheme}:// repository URLs are not supported here; use ${allowed.map((p) => `${p}://`).join(' or ')}.`);
  }
  // A URL with credentials would put them in argv and in .git: refuse it rather than strip it,
  // so the secret is moved to where it belongs instead of staying in the app's settings.
  if (parsed.username || parsed.password) {
    throw new SourceError(
      'invalid_url',
      `The repository URL ${shown(url)} must not contain a user name or password: remove the credentials from the URL; private GitHub repositories are reached through the GitHub App.`,
    );
  }
}

/** git's rules for a ref name (git-check-ref-format), plus no leading "-" so it is never an option. */
function isValidRefName(ref: string): boolean {
  if (ref === '' || ref.length > 255 || ref.startsWith('-') || ref.startsWith('/') || ref.endsWith('/')) return false;
  if (ref.endsWith('.') || ref.endsWith('.lock') || ref.includes('..') || ref.includes('@{') || ref.includes('//')) return false;
  // eslint-disable-next-line no-control-regex -- git-check-ref-format forbids control characters, so the pattern names them.
  if (ref === '@' || /[\x00-\x20\x7f~^:?*[\\]/.test(ref)) return false;
  return ref.split('/').every((part) => part !== '' && !part.startsWith('.'));
}

// git reports its failures only as text; LC_ALL=C (git-process.ts) keeps that text stable.
// Order matters: the most specific causes first.
function classify(result: GitResult, url: string, hasCredentials: boolean, what: string): SourceError {
  const where = shown(url);
  if (result.killed === 'canceled') return new SourceError('canceled', `${what} was canceled.`);
  if (result.killed === 'timeout') return new SourceError('timeout', `${what} from ${where} took too long and was stopped.`);
  const err = result.stderr;
  if (/not our ref|unadvertised object|couldn't find remote ref|no such remote ref|reference is not a tree/i.test(err)) {
    return new SourceError('commit_not_found', `The commit was not found in ${where}; it may have been force-pushed away.`);
  }
  if (/could not read (Username|Password)|terminal prompts disabled|Authentication failed|returned error: 40[13]|Access denied/i.test(err)) {
    return hasCredentials
      ? new SourceError('auth_failed', `${where} refused Rhone's credentials; check that Rhone still has access to this repository.`)
      : new SourceError('auth_failed', `${where} asks for credentials: is the repository private?`);
  }
  if (/Repository not found|does not appear to be a git repository|returned error: 404|not found/i.test(err)) {
    return new SourceError('repo_not_found', `The repository ${where} was not found, or it is private.`);
  }
  if (/transport '.*' not allowed/i.test(err)) {
    return new SourceError('invalid_url', `${where} redirected to a transport Rhone does not use.`);
  }
  if (
    /Could not resolve host|Failed to connect|Connection refused|timed out|Couldn't connect|SSL|TLS|returned error: 5\d\d|early EOF|unexpected disconnect|RPC failed|Could not read from remote/i.test(
      err,
    )
  ) {
    return new SourceError('unreachable', `The repository ${where} could not be reached; try again in a moment.`);
  }
  const last = err.trim().split('\n').filter(Boolean).pop() ?? `git exited with code ${result.code}`;
  return new SourceError('git_failed', `${what} from ${where} failed: ${last.replace(/^(fatal|error): /, '').slice(0, 300)}`);
}

type GitRun = GitCallOptions & {
  cwd?: string;
  timeoutMs: number;
  onLine?: (line: string) => void;
  onStdout?: (chunk: string) => void;
  config?: readonly string[];
};

async function git(args: string[], options: GitRun): Promise<GitResult> {
  try {
    return await runGit(args, { ...options, protocols: allowedProtocols() });
  } catch (err) {
    if (err instanceof GitUnavailableError) throw new SourceError('git_failed', err.message);
    throw err;
  }
}

/**
 * For a user's URL in production: the git settings that hold git to the checked addresses.
 * Checked again on every call, so a DNS answer that changed since the app was saved counts.
 */
async function remoteConfig(url: string, options: GitCallOptions): Promise<string[]> {
  if (!options.publicOnly) return [];
  try {
    return pinConfig(await checkPublicRemote(url));
  } catch (err) {
    if (err instanceof UnsafeRemoteError) throw new SourceError(err.problem === 'credentials' ? 'invalid_url' : 'blocked_host', err.message);
    throw err;
  }
}

/**
 * The commit a deploy of `ref` pins: a full SHA as given; otherwise the branch of that name,
 * else the tag (peeled to its commit). `ref` may also be a full name such as refs/heads/main.
 */
export async function resolveRef(url: string, ref: string, options: GitCallOptions = {}): Promise<{ sha: string }> {
  checkUrl(url);
  if (FULL_SHA.test(ref)) return { sha: ref.toLowerCase() };
  if (!isValidRefName(ref)) throw new SourceError('invalid_ref', `"${ref.slice(0, 100)}" is not a valid branch, tag or commit SHA.`);

  const candidates = ref.startsWith('refs/') ? [ref] : [`refs/heads/${ref}`, `refs/tags/${ref}`];
  // Asking for "<tag>^{}" too makes git list the commit an annotated tag points to.
  const patterns = candidates.flatMap((name) => (name.startsWith('refs/tags/') ? [name, `${name}^{}`] : [name]));
  const config = await remoteConfig(url, options);
  const result = await git(['ls-remote', url, ...patterns], { ...options, config, timeoutMs: options.timeoutMs ?? RESOLVE_TIMEOUT_MS });
  if (result.killed || result.code !== 0) throw classify(result, url, Boolean(options.credentials), `Looking up '${ref}'`);

  const found = new Map<string, string>();
  for (const line of result.stdout.split('\n')) {
    const [sha, name] = line.trim().split('\t');
    if (sha && name && FULL_SHA.test(sha)) found.set(name, sha.toLowerCase());
  }
  for (const name of candidates) {
    const sha = found.get(`${name}^{}`) ?? found.get(name);
    if (sha) return { sha };
  }
  const kind = ref.startsWith('refs/') ? 'ref' : 'branch';
  const hint = /^[0-9a-f]{4,39}$/i.test(ref) ? ' A commit must be given as its full 40-character SHA.' : '';
  throw new SourceError('ref_not_found', `${kind} '${ref}' was not found in ${shown(url)}.${hint}`);
}

/**
 * Fetches exactly `sha` (depth 1, no tags) into `dir` and checks it out detached. The checkout
 * keeps its .git, so build tools that ask git for the commit still work; it holds no remote and
 * no credential, because the URL is given to one fetch on its command line and never saved.
 */
export async function fetchCommit(input: FetchCommitInput): Promise<FetchedCommit> {
  checkUrl(input.url);
  if (!FULL_SHA.test(input.sha)) throw new SourceError('invalid_ref', `"${input.sha.slice(0, 100)}" is not a full 40-character commit SHA.`);
  const sha = input.sha.toLowerCase();
  const deadline = Date.now() + (input.timeoutMs ?? FETCH_TIMEOUT_MS);
  const remote = await remoteConfig(input.url, input);
  const base = { credentials: input.credentials, signal: input.signal, cwd: input.dir };
  const step = async (args: string[], what: string, onLine?: (line: string) => void, config?: string[]) => {
    const timeoutMs = Math.max(1, deadline - Date.now());
    const result = await git(args, { ...base, timeoutMs, onLine, config });
    if (result.killed || result.code !== 0) throw classify(result, input.url, Boolean(input.credentials), what);
    return result.stdout;
  };

  await rm(input.dir, { recursive: true, force: true });
  await mkdir(input.dir, { recursive: true });
  // An empty template: no sample hooks, nothing in .git that the fetch did not need.
  await step(['-c', 'init.defaultBranch=main', 'init', '-q', '--template='], 'Preparing the workspace');
  await step(['fetch', '--depth', '1', '--no-tags', '--progress', input.url, sha], `Fetching commit ${sha.slice(0, 7)}`, input.log, remote);
  if (input.limits) await assertCheckoutWithin(input.limits, { ...base, timeoutMs: Math.max(1, deadline - Date.now()) }, input.url);
  await step(['-c', 'advice.detachedHead=false', 'checkout', '-q', '--detach', 'FETCH_HEAD'], `Checking out ${sha.slice(0, 7)}`);

  const head = (await step(['rev-parse', 'HEAD'], 'Reading the checkout')).trim();
  if (head !== sha) throw new SourceError('git_failed', `Fetched ${head.slice(0, 7)} instead of ${sha.slice(0, 7)} from ${shown(input.url)}.`);
  await assertNoSecretOnDisk(input.dir, input.credentials);

  const [name = '', email = '', ...body] = (await step(['log', '-1', '--format=%an%x00%ae%x00%B', 'HEAD'], 'Reading the commit')).split('\0');
  const author = name ? `${name}${email ? ` <${email}>` : ''}` : undefined;
  return { sha, message: body.join('\0').trimEnd(), author };
}

const SIZE_HINT =
  'Nothing was checked out; remove large or generated files from the repository (Git LFS keeps big files out of it), or ask the operator to raise the limit.';

/**
 * What the checkout would hold, from the fetched commit's tree: every entry (files, links and
 * directories) and the sizes of its blobs, a blob counted once per path it appears at, as checkout
 * writes it. A pack compresses zeros to almost nothing, so its size says nothing about this.
 */
async function assertCheckoutWithin(limits: TreeLimits, options: GitCallOptions & { cwd: string; timeoutMs: number }, url: string): Promise<void> {
  let entries = 0;
  let bytes = 0;
  let rest = '';
  const count = (line: string) => {
    if (line === '') return;
    entries += 1;
    const [type, size] = line.split(' ');
    if (type === 'blob') bytes += Number(size) || 0;
  };
  // %(objectsize) is "-" for trees and submodule commits (git-ls-tree(1), --format since git 2.36).
  const result = await git(['ls-tree', '-r', '-t', '--format=%(objecttype) %(objectsize)', 'FETCH_HEAD'], {
    ...options,
    onStdout: (chunk) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      lines.forEach(count);
    },
  });
  if (result.killed || result.code !== 0) throw classify(result, url, Boolean(options.credentials), 'Measuring the commit');
  count(rest);
  if (bytes > limits.maxBytes) throw new SourceError('too_large', tooLarge('the repository', limits, 'bytes', bytes, SIZE_HINT).message);
  if (entries > limits.maxEntries) throw new SourceError('too_large', tooLarge('the repository', limits, 'entries', entries, SIZE_HINT).message);
}

// A last guard against a future change or a git version that records the remote: the files git
// writes URLs into must not hold the password. If one does, the checkout is not handed on.
async function assertNoSecretOnDisk(dir: string, credentials?: GitCredentials): Promise<void> {
  if (!credentials?.password) return;
  const redact = makeRedactor(credentials);
  for (const file of ['config', 'FETCH_HEAD', path.join('logs', 'HEAD')]) {
    const text = await readFile(path.join(dir, '.git', file), 'utf8').catch(() => '');
    if (redact(text) !== text) {
      await rm(path.join(dir, '.git'), { recursive: true, force: true });
      throw new SourceError('git_failed', 'The checkout recorded a credential; it was discarded.');
    }
  }
}
