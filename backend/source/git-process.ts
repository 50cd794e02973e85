// Runs the git CLI for the source stage in a sealed environment. Why each piece is here:
// - Credentials travel only in this child's environment and reach git through a GIT_ASKPASS
//   helper, so they never appear in argv (visible to every user in `ps`), in a URL (git writes
//   URLs into FETCH_HEAD, reflogs and error messages) or in .git/config.
// - Nothing of the worker's own git setup applies: HOME points at an empty temp dir, the system
//   config is off and `-c credential.helper=` drops any helper, so no stored credential of the
//   machine leaks to a user's repository and no user config changes what a deploy fetches.
// - git runs in its own process group so cancel and timeout kill it together with the
//   git-remote-https / upload-pack children it starts.
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface GitCredentials {
  username: string;
  password: string;
}

export interface RunGitOptions {
  cwd?: string;
  credentials?: GitCredentials;
  signal?: AbortSignal;
  timeoutMs: number;
  /** Transports git may use, for GIT_ALLOW_PROTOCOL (also covers redirects and submodules). */
  protocols: readonly string[];
  /** git's stderr, one line at a time, progress collapsed, secrets redacted. */
  onLine?: (line: string) => void;
  /** Streams stdout here instead of keeping it (GitResult.stdout is then ''): for listings of any length. */
  onStdout?: (chunk: string) => void;
  /** Extra `-c name=value` settings, placed before the command (connection pinning, redirects). */
  config?: readonly string[];
}

export interface GitResult {
  code: number | null;
  stdout: string;
  /** The tail of stderr, redacted: what error classification and messages may quote. */
  stderr: string;
  /** Set when git was killed by us rather than exiting on its own. */
  killed: 'canceled' | 'timeout' | null;
}

/** git is missing from the worker: an operator problem, not the user's. */
export class GitUnavailableError extends Error {
  constructor(cause: Error) {
    super(`git could not be started on this worker: ${cause.message}`);
    this.name = 'GitUnavailableError';
  }
}

// The helper holds no secret itself: it reads them from its environment, which git passes on.
// git asks "Username for '...': " then "Password for '...': "; the prompt picks the answer.
const ASKPASS_SCRIPT = `#!/bin/sh
case "$1" in
  [Uu]sername*) printf '%s\\n' "$RHONE_GIT_USERNAME" ;;
  *) printf '%s\\n' "$RHONE_GIT_PASSWORD" ;;
esac
`;

// Variables the child inherits: what finding git and reaching the network need, nothing else
// (no GIT_DIR, GIT_SSH_COMMAND, GIT_CONFIG_* or credentials of the worker's own environment).
// This is the child's process environment, not Rhone's configuration, hence read here.
const PASS_THROUGH = [
  'PATH',
  'TMPDIR',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'ALL_PROXY',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'all_proxy',
];

const KILL_GRACE_MS = 2_000;
const STDERR_TAIL = 16_384;
const PROGRESS_EVERY_MS = 1_000;

/** Replaces every form in which the password could show up in git's output. */
export function makeRedactor(credentials?: GitCredentials): (text: string) => string {
  const secret = credentials?.password;
  if (!secret) return (text) => text;
  const forms = [secret, encodeURIComponent(secret), Buffer.from(`${credentials.username}:${secret}`).toString('base64')].filter(
    (form, i, all) => form.length > 0 && all.indexOf(form) === i,
  );
  return (text) => forms.reduce((out, form) => out.split(form).join('[redacted]'), text);
}

/**
 * Splits git's stderr into lines. A progress meter rewrites its line with `\r`; those updates are
 * collapsed so a fetch logs a handful of lines, not thousands: the last state of a meter is
 * always emitted, intermediate ones at most once a second.
 */
export function lineSplitter(emit: (line: string) => void, now: () => number = Date.now) {
  let buffer = '';
  let pending: string | null = null;
  let lastProgressAt = 0;
  let lastEmitted = '';

  const out = (raw: string) => {
    // git pads progress lines with spaces to overwrite the previous, longer state.
    const line = raw.replace(/\s+$/, '');
    if (line === '' || line === lastEmitted) return;
    lastEmitted = line;
    emit(line);
  };

  return {
    push(chunk: string) {
      buffer += chunk;
      let match: RegExpExecArray | null;
      const separator = /\r\n|\r|\n/g;
      let start = 0;
      while ((match = separator.exec(buffer)) !== null) {
        const segment = buffer.slice(start, match.index);
        start = match.index + match[0].length;
        if (match[0] === '\r') {
          pending = segment;
          if (now() - lastProgressAt >= PROGRESS_EVERY_MS) {
            lastProgressAt = now();
            out(segment);
          }
          continue;
        }
        pending = null;
        out(segment);
      }
      buffer = buffer.slice(start);
    },
    end() {
      if (buffer !== '') out(buffer);
      else if (pending !== null) out(pending);
      buffer = '';
      pending = null;
    },
  };
}

function childEnv(sandbox: string, options: RunGitOptions, askpass: string | null): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of PASS_THROUGH) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  Object.assign(env, {
    HOME: sandbox,
    XDG_CONFIG_HOME: sandbox,
    // Messages in English: classifying git's failures depends on it.
    LC_ALL: 'C',
    LANG: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    // Never wait on a terminal: with no credentials, a private repository fails at once.
    GIT_TERMINAL_PROMPT: '0',
    GIT_ALLOW_PROTOCOL: options.protocols.join(':'),
  });
  if (askpass && options.credentials) {
    env.GIT_ASKPASS = askpass;
    env.RHONE_GIT_USERNAME = options.credentials.username;
    env.RHONE_GIT_PASSWORD = options.credentials.password;
  }
  return env;
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone, which is what we wanted.
  }
}

/** Runs `git <args>`; resolves with its outcome (a non-zero exit is not an exception here). */
export async function runGit(args: string[], options: RunGitOptions): Promise<GitResult> {
  if (options.signal?.aborted) return { code: null, stdout: '', stderr: '', killed: 'canceled' };
  const sandbox = await mkdtemp(path.join(os.tmpdir(), 'rhone-git-'));
  try {
    let askpass: string | null = null;
    if (options.credentials) {
      askpass = path.join(sandbox, 'askpass.sh');
      await writeFile(askpass, ASKPASS_SCRIPT, { mode: 0o700 });
      await chmod(askpass, 0o700); // the umask may have narrowed the mode given to writeFile
    }
    const env = childEnv(sandbox, options, askpass);
    // Every invocation drops credential helpers and pins protocol v2: v2 lets a client fetch any
    // reachable commit by SHA (v0 only allows advertised tips unless the server opts in).
    const argv = ['-c', 'credential.helper=', '-c', 'protocol.version=2', ...(options.config ?? []).flatMap((c) => ['-c', c]), ...args];
    return await spawnGit(argv, env, options);
  } finally {
    await rm(sandbox, { recursive: true, force: true });
  }
}

function spawnGit(argv: string[], env: NodeJS.ProcessEnv, options: RunGitOptions): Promise<GitResult> {
  const redact = makeRedactor(options.credentials);
  return new Promise((resolve, reject) => {
    const child = spawn('git', argv, { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let killed: GitResult['killed'] = null;
    let stdout = '';
    let stderr = '';
    let graceTimer: NodeJS.Timeout | undefined;
    const lines = lineSplitter((line) => options.onLine?.(redact(line)));

    const stop = (reason: 'canceled' | 'timeout') => {
      if (killed) return;
      killed = reason;
      killGroup(child.pid, 'SIGTERM');
      graceTimer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS);
      graceTimer.unref();
    };
    const onAbort = () => stop('canceled');
    const deadline = setTimeout(() => stop('timeout'), options.timeoutMs);
    options.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      if (options.onStdout) options.onStdout(chunk);
      else stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL);
      lines.push(chunk);
    });
    const cleanup = () => {
      clearTimeout(deadline);
      options.signal?.removeEventListener('abort', onAbort);
    };
    child.on('error', (err) => {
      cleanup();
      reject(new GitUnavailableError(err));
    });
    child.on('close', (code) => {
      cleanup();
      // The group may still hold children that ignored SIGTERM; they get no further chance.
      if (killed) killGroup(child.pid, 'SIGKILL');
      if (graceTimer) clearTimeout(graceTimer);
      lines.end();
      resolve({ code, stdout, stderr: redact(stderr), killed });
    });
  });
}
