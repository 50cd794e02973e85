// Running the builder's child processes (build commands, railpack, buildctl): in a process group
// of their own so a timeout or a cancel kills everything they started, with their output handed
// over line by line as it is written, never buffered to the end.
import { spawn } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import type { Redactor } from '../deployments/redact.ts';

/** Longer lines are cut into pieces of this size, so one runaway line cannot exhaust memory. */
export const MAX_LINE = 16 * 1024;

export interface LineSplitter {
  push(chunk: Buffer): void;
  end(): void;
}

/**
 * Splits a byte stream into lines (\n or \r\n), decoding UTF-8 across chunk boundaries. With a
 * redactor, the stream is redacted before it is cut (into lines, or a long line into pieces), so
 * a secret crossing a chunk or a cut never shows in halves.
 */
export function lineSplitter(onLine: (line: string) => void, redact?: Redactor, maxLine: number = MAX_LINE): LineSplitter {
  const decoder = new StringDecoder('utf8');
  const redacting = redact?.stream();
  let pending = '';
  const emit = (text: string) => {
    for (let i = 0; i < text.length; i += maxLine) onLine(text.slice(i, i + maxLine));
  };
  const take = (text: string) => {
    // Only the new text can hold the next newline: a long line held whole (maxLine of megabytes)
    // is then scanned once, not once per chunk.
    let from = pending.length;
    pending += text;
    let nl: number;
    while ((nl = pending.indexOf('\n', from)) !== -1) {
      emit(pending.slice(0, nl).replace(/\r$/, ''));
      pending = pending.slice(nl + 1);
      from = 0;
    }
    if (pending.length > maxLine) {
      emit(pending.slice(0, maxLine));
      pending = pending.slice(maxLine);
    }
  };
  return {
    push: (chunk) => take(redacting ? redacting.push(decoder.write(chunk)) : decoder.write(chunk)),
    end: () => {
      take(redacting ? redacting.push(decoder.end()) + redacting.end() : decoder.end());
      if (pending) emit(pending.replace(/\r$/, ''));
      pending = '';
    },
  };
}

export interface RunOptions {
  cwd: string;
  env: Record<string, string>;
  signal?: AbortSignal;
  /** Kill the process group after this long; undefined: no limit. */
  timeoutMs?: number;
  onLine: (stream: 'stdout' | 'stderr', line: string) => void;
  /** Redacts the output before it is cut into lines (see lineSplitter). */
  redact?: Redactor;
  /**
   * The longest line of each stream held whole (default 16 KB); longer ones are cut. A stream of
   * machine-readable lines (buildctl's rawjson) needs its lines whole to parse them.
   */
  maxLine?: Partial<Record<'stdout' | 'stderr', number>>;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  aborted: boolean;
}

function killGroup(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is already gone
  }
}

/** Runs argv to completion; rejects only when it cannot be started at all. */
export function runProcess(argv: string[], options: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) return resolve({ code: null, signal: null, timedOut: false, aborted: true });
    const child = spawn(argv[0], argv.slice(1), {
      cwd: options.cwd,
      env: options.env,
      detached: true, // a process group of its own: killing -pid reaches its children too
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let timedOut = false;
    let aborted = false;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    const out = lineSplitter((line) => options.onLine('stdout', line), options.redact, options.maxLine?.stdout);
    const err = lineSplitter((line) => options.onLine('stderr', line), options.redact, options.maxLine?.stderr);
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));

    const onAbort = () => {
      aborted = true;
      killGroup(child.pid);
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(
            () => {
              timedOut = true;
              killGroup(child.pid);
            },
            Math.max(0, options.timeoutMs),
          );
    let closeTimer: NodeJS.Timeout | undefined;

    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(closeTimer);
      options.signal?.removeEventListener('abort', onAbort);
      out.end();
      err.end();
      resolve({ code: exit?.code ?? null, signal: exit?.signal ?? null, timedOut, aborted });
    };
    child.once('error', (e) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      reject(e);
    });
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      // What the command left running in the background dies with it, as in a container's RUN;
      // otherwise a stray daemon would hold the pipes open and the build would never end.
      killGroup(child.pid);
      // A process that escaped the group (setsid) may still hold a pipe: stop waiting for it.
      closeTimer = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish();
      }, 2000);
    });
    child.once('close', () => {
      if (!exit) exit = { code: child.exitCode, signal: child.signalCode };
      finish();
    });
  });
}
