// Runs machines as local processes and moves them through Fly's states:
// created → starting → started → stopping → stopped → destroying → destroyed, and failed.
// Every state change is an event. API handlers make the immediate change (so a wait that follows
// sees it) and queue the slow work; work on one machine runs in order, one task at a time.
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { CheckStatus, MachineEvent, MachineState } from '../backend/providers/fly/types.ts';
import { CheckRunner, checkSpecs, idleStatuses } from './checks.ts';
import { durationOr } from './durations.ts';
import { ulid } from './ids.ts';
import { planLaunch } from './launch.ts';
import type { LocalLogger } from './log.ts';
import { isAlive, killMachine, machineAlive, processStartTime, signalProcess, spawnMachineProcess } from './processes.ts';
import { EVENTS_KEPT, type MachineRecord, type Store } from './store.ts';

const DEFAULT_STOP_TIMEOUT_MS = 5_000;
/** A process that dies this soon after starting, with a non-zero code, leaves its machine failed. */
const IMMEDIATE_EXIT_MS = 1_000;
/** A process that stayed up this long has its restart count forgiven. */
const STABLE_MS = 10_000;
const DEFAULT_MAX_RETRIES = 10;
/** How often a stopping machine's process group is looked at once its main process has exited. */
const GROUP_POLL_MS = 50;
/** How often an adopted process (not our child, so no exit event) is looked at. */
const ADOPTED_POLL_MS = 250;

type Intent = 'stop' | 'restart' | 'replace' | 'destroy' | 'shutdown';

interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Running {
  /** Absent for a process adopted from a runtime that died (not our child: watched by polling). */
  child?: ChildProcess;
  pid: number;
  startedAt: number;
  intent?: Intent;
  exited: Promise<ExitInfo>;
  checks: CheckRunner;
  killTimer?: NodeJS.Timeout;
  /** When the stop timeout's SIGKILL is due (set by a requested stop). */
  killAt?: number;
  /** For an adopted process: the timer that notices it has gone. */
  watch?: NodeJS.Timeout;
}

export function stopSignalOf(m: MachineRecord, override?: string): NodeJS.Signals {
  // SIGINT is Fly's default kill signal when stop_config names none.
  return (override ?? m.config.stop_config?.signal ?? 'SIGINT') as NodeJS.Signals;
}

export function stopTimeoutOf(m: MachineRecord, override?: string): number {
  return durationOr(override ?? m.config.stop_config?.timeout, DEFAULT_STOP_TIMEOUT_MS);
}

export class Supervisor {
  /** Emits the machine's id after every change a waiter may care about. */
  readonly changes = new EventEmitter();
  private readonly running = new Map<string, Running>();
  private readonly queues = new Map<string, Promise<void>>();
  private readonly restartTimers = new Map<string, NodeJS.Timeout>();
  private closing = false;

  constructor(
    private readonly dataDir: string,
    private readonly store: Store,
    private readonly log: LocalLogger,
  ) {
    this.changes.setMaxListeners(0);
  }

  // ---- state and events ----------------------------------------------------------------------

  recordEvent(m: MachineRecord, type: string, status: string, source: 'user' | 'flyd', request?: Record<string, unknown>): void {
    const event: MachineEvent = { id: ulid(), type, status, source, timestamp: Date.now(), ...(request ? { request } : {}) };
    m.events = [event, ...m.events].slice(0, EVENTS_KEPT);
    this.touch(m);
  }

  transition(m: MachineRecord, state: MachineState, type: string, source: 'user' | 'flyd', request?: Record<string, unknown>): void {
    m.state = state;
    this.recordEvent(m, type, state, source, request);
  }

  touch(m: MachineRecord): void {
    m.updatedAt = new Date().toISOString();
    this.store.changed();
    this.changes.emit(m.id);
  }

  // ---- what the API asks for -----------------------------------------------------------------

  /** Starts a created, stopped or failed machine; a running one is left as it is. */
  start(m: MachineRecord, source: 'user' | 'flyd' = 'user'): void {
    if (m.state === 'started' || m.state === 'starting' || m.state === 'replacing') return;
    this.transition(m, 'starting', 'start', source);
    this.enqueue(m, () => this.ensureRunning(m));
  }

  /** Sends the signal to the machine's process group, and SIGKILL after the timeout. */
  stop(m: MachineRecord, signal: NodeJS.Signals, timeoutMs: number): void {
    if (!['started', 'starting', 'replacing'].includes(m.state)) return;
    this.cancelRestart(m);
    this.transition(m, 'stopping', 'stop', 'user', { signal, timeout_ms: timeoutMs });
    this.enqueue(m, async () => {
      const exit = await this.kill(m, 'stop', signal, timeoutMs);
      if (m.state === 'stopping') this.transition(m, 'stopped', 'exit', 'flyd', exitRequest(exit, true, false));
    });
  }

  restart(m: MachineRecord, signal: NodeJS.Signals, timeoutMs: number): void {
    if (m.state !== 'started') return this.start(m);
    this.transition(m, 'starting', 'restart', 'user');
    this.enqueue(m, async () => {
      await this.kill(m, 'restart', signal, timeoutMs);
      await this.ensureRunning(m);
    });
  }

  /** After an update: a running machine swaps its process for one with the new config. */
  replace(m: MachineRecord, previous: { signal: NodeJS.Signals; timeoutMs: number }, skipLaunch: boolean): void {
    const wasRunning = this.running.has(m.id) || ['started', 'starting', 'replacing'].includes(m.state);
    if (!wasRunning) {
      this.recordEvent(m, 'update', m.state, 'user');
      if (!skipLaunch) this.start(m);
      return;
    }
    this.cancelRestart(m);
    this.transition(m, 'replacing', 'update', 'user');
    this.enqueue(m, async () => {
      const exit = await this.kill(m, 'replace', previous.signal, previous.timeoutMs);
      if (m.state !== 'replacing') return;
      if (skipLaunch) this.transition(m, 'stopped', 'exit', 'flyd', exitRequest(exit, true, false));
      else await this.ensureRunning(m);
    });
  }

  destroy(m: MachineRecord, force: boolean): void {
    this.cancelRestart(m);
    this.transition(m, 'destroying', 'destroy', 'user', { force });
    const signal = force ? 'SIGKILL' : stopSignalOf(m);
    this.enqueue(m, async () => {
      await this.kill(m, 'destroy', signal, stopTimeoutOf(m));
      m.lease = undefined;
      m.hostPorts = {};
      m.primaryPort = undefined;
      m.destroyedAt = new Date().toISOString();
      this.transition(m, 'destroyed', 'destroy', 'flyd');
    });
  }

  /** Resolves when every queued task of the machine has run. */
  settled(m: MachineRecord): Promise<void> {
    return this.queues.get(m.id) ?? Promise.resolve();
  }

  // ---- what the router and presenters read ---------------------------------------------------

  checksOf(m: MachineRecord): CheckStatus[] {
    const run = this.running.get(m.id);
    if (run) return run.checks.list();
    return idleStatuses(m.config, `the machine is ${m.state}`, m.updatedAt);
  }

  /** Started, not cordoned, serving a service, and every service check passes. */
  routable(m: MachineRecord): boolean {
    const run = this.running.get(m.id);
    return (
      m.state === 'started' &&
      !m.cordoned &&
      run !== undefined &&
      m.primaryPort !== undefined &&
      (m.config.services?.length ?? 0) > 0 &&
      run.checks.servicesHealthy()
    );
  }

  // ---- shutdown ------------------------------------------------------------------------------

  /**
   * Stops every process gracefully (its stop signal, SIGKILL after its timeout) but keeps the
   * machines' recorded states, so the next start restarts what was running.
   */
  async shutdown(): Promise<void> {
    this.closing = true;
    for (const t of this.restartTimers.values()) clearTimeout(t);
    this.restartTimers.clear();
    const stopAll = () =>
      Promise.all(
        [...this.running.keys()].map((id) => {
          const m = this.store.state.machines[id];
          return m ? this.kill(m, 'shutdown', stopSignalOf(m), stopTimeoutOf(m)) : undefined;
        }),
      );
    await stopAll();
    // A task may have been half-way through starting a process; it stops that one itself.
    await Promise.all([...this.queues.values()]);
    await stopAll();
  }

  /** Leaves every process running, as a crash of the runtime would; their pids stay recorded. */
  abandon(): void {
    this.closing = true;
    for (const t of this.restartTimers.values()) clearTimeout(t);
    this.restartTimers.clear();
    for (const run of this.running.values()) {
      run.checks.stop();
      if (run.killTimer) clearTimeout(run.killTimer);
      if (run.watch) clearInterval(run.watch);
      run.child?.removeAllListeners('exit');
      run.child?.unref();
    }
    this.running.clear();
  }

  /**
   * Takes over a machine's process that a runtime which died left running (checked by the caller:
   * same pid and start time), so the app keeps its in-memory sessions across a runtime restart.
   * It is not our child, so its end is noticed by polling, and its exit code is unknown.
   */
  adopt(m: MachineRecord): void {
    const pid = m.pid;
    if (pid === undefined || this.running.has(m.id)) return;
    let onExit!: (info: ExitInfo) => void;
    const exited = new Promise<ExitInfo>((resolve) => (onExit = resolve));
    const checks = this.checkRunner(m);
    const run: Running = { pid, startedAt: Date.now(), exited, checks };
    const pidStart = m.pidStart;
    run.watch = setInterval(() => {
      if (isAlive(pid) && (!pidStart || processStartTime(pid) === pidStart)) return;
      clearInterval(run.watch);
      void this.groupGone(run).then(() => {
        const info = { code: null, signal: null };
        onExit(info);
        this.exited(m, run, info);
      });
    }, ADOPTED_POLL_MS);
    this.running.set(m.id, run);
    this.writeLog(m, `the local runtime restarted and took over the running process ${pid}`);
    checks.start();
    if (m.state === 'starting' || m.state === 'replacing') this.transition(m, 'started', 'start', 'flyd');
    else this.touch(m);
  }

  private checkRunner(m: MachineRecord): CheckRunner {
    return new CheckRunner(
      checkSpecs(m.config),
      (internal) => (internal !== undefined ? m.hostPorts[internal] : undefined) ?? m.primaryPort,
      () => this.changes.emit(m.id),
    );
  }

  // ---- the work ------------------------------------------------------------------------------

  private enqueue(m: MachineRecord, task: () => Promise<void>): void {
    const next = (this.queues.get(m.id) ?? Promise.resolve()).then(task).catch((err: unknown) => {
      this.log.error({ err, machine: m.id, app: m.app }, 'local machine task failed');
    });
    this.queues.set(m.id, next);
    void next.then(() => {
      if (this.queues.get(m.id) === next) this.queues.delete(m.id);
    });
  }

  private cancelRestart(m: MachineRecord): void {
    const timer = this.restartTimers.get(m.id);
    if (timer) clearTimeout(timer);
    this.restartTimers.delete(m.id);
  }

  private async kill(m: MachineRecord, intent: Intent, signal: NodeJS.Signals, timeoutMs: number): Promise<ExitInfo | undefined> {
    const run = this.running.get(m.id);
    if (!run) return undefined;
    run.intent = intent;
    this.writeLog(m, `stopping with ${signal} (SIGKILL after ${timeoutMs} ms)`);
    // As Fly's init does, the stop signal goes to the main process only (superfly/init-snapshot
    // src/bin/init/main.rs: kill() with the child's positive pid); passing it on is the image's
    // job, which Rhone's images do (backend/builder/start-command.ts). SIGKILL ends the whole
    // group, as a VM's end does.
    if (signal === 'SIGKILL') killMachine(run.pid);
    else signalProcess(run.pid, signal);
    run.killAt = Date.now() + (signal === 'SIGKILL' ? 0 : timeoutMs);
    if (signal !== 'SIGKILL') run.killTimer = setTimeout(() => killMachine(run.pid), timeoutMs);
    return run.exited;
  }

  /** Spawns the machine's process when its state says it should run and none does. */
  private async ensureRunning(m: MachineRecord): Promise<void> {
    if (this.closing || this.running.has(m.id) || (m.state !== 'starting' && m.state !== 'replacing')) return;
    const fail = (message: string) => {
      this.writeLog(m, `failed to start: ${message}`);
      if (m.state === 'starting' || m.state === 'replacing') this.transition(m, 'failed', 'start', 'flyd', { error: message });
    };
    let plan;
    try {
      plan = await planLaunch(this.dataDir, m, this.store.state.apps[m.app], Object.values(this.store.state.machines));
    } catch (err) {
      return fail((err as Error).message);
    }
    const { hostPorts, primaryPort } = plan;
    this.writeLog(m, `starting version ${m.version}: ${plan.argv.join(' ')} (PORT=${primaryPort})`);
    let spawned;
    try {
      spawned = await spawnMachineProcess(plan.argv, plan.cwd, plan.env, this.logFile(m));
    } catch (err) {
      return fail((err as Error).message);
    }
    const { child, pid } = spawned;
    if (this.closing) {
      // The runtime began closing while this process started: it must not outlive the runtime.
      killMachine(pid);
      return;
    }
    let onExit!: (info: ExitInfo) => void;
    const exited = new Promise<ExitInfo>((resolve) => (onExit = resolve));
    m.hostPorts = hostPorts;
    m.primaryPort = primaryPort;
    const checks = this.checkRunner(m);
    const run: Running = { child, pid, startedAt: Date.now(), exited, checks };
    this.running.set(m.id, run);
    child.once('exit', (code, signal) => {
      void this.groupGone(run).then(() => {
        onExit({ code, signal });
        this.exited(m, run, { code, signal });
      });
    });
    m.pid = pid;
    m.pidStart = processStartTime(pid);
    checks.start();
    if (m.state === 'starting' || m.state === 'replacing') this.transition(m, 'started', 'start', 'flyd');
    else this.touch(m);
  }

  /**
   * After a requested stop, the main process exiting is not the end of the drain: a shell that
   * dies of the signal at once (`sh -c "npm run start"`) leaves the app it started, which got the
   * same signal through the group, still closing its connections. Wait for the whole group to be
   * gone, or for the stop timeout (whose SIGKILL then ends it). A crash (no intent) ends at once,
   * as a VM does when its main process dies.
   */
  private async groupGone(run: Running): Promise<void> {
    if (!run.intent) return;
    // The SIGKILL at the stop timeout ends the group; the margin only guards against a process the
    // kernel cannot kill (uninterruptible sleep), which must not hold the machine in stopping.
    const giveUpAt = (run.killAt ?? Date.now()) + 2_000;
    while (machineAlive(run.pid) && Date.now() < giveUpAt) await new Promise((resolve) => setTimeout(resolve, GROUP_POLL_MS));
  }

  private exited(m: MachineRecord, run: Running, exit: ExitInfo): void {
    if (run.killTimer) clearTimeout(run.killTimer);
    if (run.watch) clearInterval(run.watch);
    run.checks.stop();
    this.running.delete(m.id);
    // The main process is gone: as when a VM stops, nothing it started may outlive it.
    killMachine(run.pid);
    m.pid = undefined;
    m.pidStart = undefined;
    this.writeLog(m, `process exited (${exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`})`);
    this.touch(m);
    if (this.closing || run.intent || m.state !== 'started') return;

    const lived = Date.now() - run.startedAt;
    if (lived >= STABLE_MS) m.restarts = 0;
    const policy = m.config.restart?.policy ?? 'on-failure';
    const failed = exit.code !== 0;
    const restart = policy === 'always' || (policy === 'on-failure' && failed && m.restarts < (m.config.restart?.max_retries ?? DEFAULT_MAX_RETRIES));
    if (!restart) {
      const state = failed && lived < IMMEDIATE_EXIT_MS ? 'failed' : 'stopped';
      this.transition(m, state, 'exit', 'flyd', exitRequest(exit, false, false));
      if (m.config.auto_destroy) this.destroy(m, false);
      return;
    }
    const delay = Math.min(100 * 2 ** m.restarts, 5_000);
    m.restarts += 1;
    this.transition(m, 'starting', 'exit', 'flyd', exitRequest(exit, false, true));
    this.restartTimers.set(
      m.id,
      setTimeout(() => {
        this.restartTimers.delete(m.id);
        this.enqueue(m, () => this.ensureRunning(m));
      }, delay),
    );
  }

  logFile(m: MachineRecord): string {
    return path.join(this.dataDir, 'machines', m.id, 'machine.log');
  }

  private writeLog(m: MachineRecord, line: string): void {
    try {
      mkdirSync(path.dirname(this.logFile(m)), { recursive: true });
      appendFileSync(this.logFile(m), `[rhone-local ${new Date().toISOString()}] ${line}\n`);
    } catch (err) {
      this.log.warn({ err, machine: m.id }, 'cannot write to the machine log');
    }
  }
}

function exitRequest(exit: ExitInfo | undefined, requestedStop: boolean, restarting: boolean): Record<string, unknown> {
  return {
    exit_event: {
      exit_code: exit?.code ?? (exit?.signal ? 128 : 0),
      signal: exit?.signal ?? null,
      oom_killed: false,
      requested_stop: requestedStop,
      restarting,
      exited_at: new Date().toISOString(),
    },
  };
}
