// What the runtime does when it starts over its persisted state. A process recorded as running
// belongs to a runtime that died (it was SIGKILLed, or the host rebooted). If it is still the
// same process (same pid and start time) and its machine should be running, it is taken over as
// it is, so the app keeps its in-memory sessions (Vango's WebSocket state) across the restart.
// Anything else left behind is killed, and the machines that should run but whose process died
// are started again unless their policy says "no".
import { setTimeout as sleep } from 'node:timers/promises';
import type { Runtime } from './runtime.ts';
import type { MachineRecord } from './store.ts';
import { isAlive, killMachine, machineAlive, processStartTime } from './processes.ts';

const LEFTOVER_WAIT_MS = 3_000;

/** Kills what a dead runtime's machine left behind (its group and session); false when the pid now belongs to someone else. */
function killLeftover(pid: number, recordedStart: string | undefined): boolean {
  if (isAlive(pid)) {
    const start = processStartTime(pid);
    if (recordedStart && start && start !== recordedStart) return false;
    return killMachine(pid);
  }
  return machineAlive(pid) && killMachine(pid);
}

const RUNNING_STATES = ['started', 'starting', 'replacing'];

/** The machine's recorded process is the very one it started (the pid was not reused since). */
function survived(m: MachineRecord): boolean {
  if (!m.pid || !m.pidStart || !isAlive(m.pid)) return false;
  return processStartTime(m.pid) === m.pidStart;
}

export async function reconcile(rt: Runtime): Promise<void> {
  const killed: number[] = [];
  const machines = Object.values(rt.store.state.machines);
  const adopted = new Set<string>();
  for (const m of machines) {
    if (RUNNING_STATES.includes(m.state) && survived(m)) {
      adopted.add(m.id);
      continue;
    }
    if (m.pid && killLeftover(m.pid, m.pidStart)) {
      killed.push(m.pid);
      rt.log.warn({ machine: m.id, app: m.app, pid: m.pid }, 'killed a machine process left by a previous run');
    }
    m.pid = undefined;
    m.pidStart = undefined;
  }
  // Their ports must be free before the machines start again.
  const deadline = Date.now() + LEFTOVER_WAIT_MS;
  while (killed.some((pid) => isAlive(pid) || machineAlive(pid)) && Date.now() < deadline) await sleep(25);

  const why = { reason: 'the local runtime restarted' };
  for (const m of machines) {
    if (adopted.has(m.id)) {
      rt.log.info({ machine: m.id, app: m.app, pid: m.pid }, 'took over a machine process that outlived the previous run');
      rt.supervisor.adopt(m);
    } else if (RUNNING_STATES.includes(m.state)) {
      rt.supervisor.transition(m, 'stopped', 'exit', 'flyd', why);
      if ((m.config.restart?.policy ?? 'on-failure') !== 'no') rt.supervisor.start(m, 'flyd');
    } else if (m.state === 'stopping') {
      rt.supervisor.transition(m, 'stopped', 'exit', 'flyd', why);
    } else if (m.state === 'destroying') {
      m.lease = undefined;
      m.destroyedAt = new Date().toISOString();
      rt.supervisor.transition(m, 'destroyed', 'destroy', 'flyd', why);
    }
  }
  rt.store.save();
}
