// Operating-system helpers for machine processes: free ports, spawning in a process group of
// its own, signalling that group, and recognising a pid we started before a crash.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** A port nothing listens on right now; `preferred` is kept when it is still free. */
export async function freePort(preferred?: number): Promise<number> {
  if (preferred) {
    const ok = await listenOnce(preferred).then(
      () => true,
      () => false,
    );
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

/**
 * Signals a machine's main process alone. Safe from pid reuse while the process is running or its
 * group lives on: Linux does not hand out a pid that is still some process group's id.
 */
export function signalProcess(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
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

/**
 * Every process of session `sid`, read from /proc (Linux). A machine's process leads a session of
 * its own (spawned detached, which calls setsid), and whatever it starts stays in that session even
 * in a process group of its own (Rhone's start wrapper puts the app in one): the session is the
 * machine, as the VM is on Fly. Empty where /proc is absent.
 */
export function sessionMembers(sid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const members: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // After the command name: state, ppid, pgrp, session.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[3]) === sid) members.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return members;
}

/** Whether anything of the machine whose main process was `pid` still runs. */
export function machineAlive(pid: number): boolean {
  return groupExists(pid) || sessionMembers(pid).length > 0;
}

/** SIGKILLs everything the machine whose main process was `pid` runs: its group and its whole session. */
export function killMachine(pid: number): boolean {
  let any = signalGroup(pid, 'SIGKILL');
  for (const member of sessionMembers(pid)) any = signalProcess(member, 'SIGKILL') || any;
  return any;
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
