// What the runtime does when it starts over its persisted state. A process recorded as running
// belongs to a runtime that died (it was SIGKILLed, or the host rebooted): kill what is left of
// it, then restart the machines that were running unless their policy says "no".
import { setTimeout as sleep } from 'node:timers/promises';
import type { Runtime } from './runtime.ts';
import { groupExists, isAlive, processStartTime, signalGroup } from './processes.ts';

const LEFTOVER_WAIT_MS = 3_000;

/** Kills the process group a dead runtime left behind; false when the pid now belongs to someone else. */
function killLeftover(pid: number, recordedStart: string | undefined): boolean {
  if (isAlive(pid)) {
    const start = processStartTime(pid);
    if (recordedStart && start && start !== recordedStart) return false;
    return signalGroup(pid, 'SIGKILL');
  }
  return groupExists(pid) && signalGroup(pid, 'SIGKILL');
}

export async function reconcile(rt: Runtime): Promise<void> {
  const killed: number[] = [];
  const machines = Object.values(rt.store.state.machines);
  for (const m of machines) {
    if (m.pid && killLeftover(m.pid, m.pidStart)) {
      killed.push(m.pid);
      rt.log.warn({ machine: m.id, app: m.app, pid: m.pid }, 'killed a machine process left by a previous run');
    }
    m.pid = undefined;
    m.pidStart = undefined;
  }
  // Their ports must be free before the machines start again.
  const deadline = Date.now() + LEFTOVER_WAIT_MS;
  while (killed.some((pid) => isAlive(pid) || groupExists(pid)) && Date.now() < deadline) await sleep(25);

  const why = { reason: 'the local runtime restarted' };
  for (const m of machines) {
    if (m.state === 'started' || m.state === 'starting' || m.state === 'replacing') {
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
