// Operating-system helpers for machine processes: free ports, spawning in a process group of
// its own, signalling that group, and recognising a pid we started before a crash.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** A port nothing listens on right now; `preferred` is kept when it is still free. */
export async function freePort(preferred?: number): Promise<number> {
  if (preferred) {
    const ok = await listenOnce(preferred).then(() => true, () => false);
    if (ok) return preferred;
  }
  return listenOnce(0);
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const address = server.address();
      const actual = typeof address === 'object' && address ? address.port : port;
      server.close(() => resolve(actual));
    });
  });
}

// A machine process needs PATH (to find node, sh…) and a few locale/home settings of the host;
// nothing else of the control plane's environment (its secrets above all) may leak into it.
const HOST_ENV_KEPT = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'LC_ALL', 'TZ', 'SYSTEMROOT', 'SystemRoot'];

export function hostEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of HOST_ENV_KEPT) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  return env;
}

export interface SpawnResult {
  child: ChildProcess;
  pid: number;
}

/**
 * Starts argv detached (a process group of its own, so a signal reaches its children too) with
 * stdout and stderr appended to logFile. The log is a file descriptor, not a pipe, so the process
 * keeps running and logging if the runtime dies.
 */
export function spawnMachineProcess(argv: string[], cwd: string, env: Record<string, string>, logFile: string): Promise<SpawnResult> {
  mkdirSync(path.dirname(logFile), { recursive: true });
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(argv[0], argv.slice(1), { cwd, env, detached: true, stdio: ['ignore', fd, fd] });
    return new Promise((resolve, reject) => {
      child.once('spawn', () => resolve({ child, pid: child.pid as number }));
      child.once('error', reject);
    });
  } finally {
    closeSync(fd);
  }
}

/**
 * Signals the whole process group a machine process leads; false when the group is gone. Never
 * the bare pid: once the group is gone, that pid may belong to someone else.
 */
export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The process's start time in clock ticks since boot (Linux); undefined where /proc is absent. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}
