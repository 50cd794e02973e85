// How long a machine was started within a window, from what the Machines API tells us: its current
// state and last update, and (when it changed during the window) its events, each of which carries
// the state it left the machine in and a millisecond timestamp. Fly bills the seconds a machine
// spends in `started`; we count the same.
import type { MachineEvent } from '../providers/fly/types.ts';

const STARTED = 'started';
/** Fly returns at most this many events per machine (the newest). */
export const EVENTS_KEPT = 50;

export interface MachineNow {
  state: string;
  /** When the machine last changed, in ms. */
  updatedAtMs: number;
}

/** Whether the machine needs its events to be counted in [from, to): it changed after `from`. */
export function changedSince(machine: MachineNow, from: number): boolean {
  return machine.updatedAtMs > from;
}

/**
 * Was the machine started just before the oldest event we have? A launch means it did not exist;
 * a stop or an exit means it was running; anything else we cannot tell and do not bill.
 */
function startedBefore(oldest: MachineEvent): boolean {
  return oldest.type === 'stop' || oldest.type === 'exit';
}

/**
 * Milliseconds started in each of `windows` ([start, end) pairs, ascending, contiguous). Without
 * events (the machine did not change since the first window began), its current state held all
 * along. With events, the state at each moment is the one the latest event before it left.
 */
export function startedMsIn(machine: MachineNow, events: MachineEvent[] | null, windows: [number, number][]): number[] {
  if (windows.length === 0) return [];
  if (!events) return windows.map(([a, b]) => (machine.state === STARTED ? b - a : 0));
  const sorted = [...events].sort((a, b) => a.timestamp - b.timestamp);
  const from = windows[0][0];
  const before = sorted.filter((e) => e.timestamp <= from);
  let started: boolean;
  if (before.length > 0) started = before[before.length - 1].status === STARTED;
  else if (sorted.length > 0) started = startedBefore(sorted[0]);
  else started = machine.state === STARTED;
  const changes = sorted.filter((e) => e.timestamp > from);
  return windows.map(([start, end]) => {
    let total = 0;
    let at = start;
    while (changes.length > 0 && changes[0].timestamp < end) {
      const e = changes.shift()!;
      if (started) total += e.timestamp - at;
      at = e.timestamp;
      started = e.status === STARTED;
    }
    if (started) total += end - at;
    return total;
  });
}

const DAY_MS = 86_400_000;

/** [from, to) cut at each UTC midnight, so every usage record falls within one UTC day (and month). */
export function splitAtUtcDays(from: number, to: number): [number, number][] {
  const out: [number, number][] = [];
  for (let a = from; a < to;) {
    const midnight = (Math.floor(a / DAY_MS) + 1) * DAY_MS;
    const b = Math.min(to, midnight);
    out.push([a, b]);
    a = b;
  }
  return out;
}

/** A quantity spread over windows in proportion to their length; the parts add up to the whole. */
export function spread(quantity: number, windows: [number, number][]): number[] {
  const total = windows.reduce((n, [a, b]) => n + (b - a), 0);
  let left = quantity;
  return windows.map(([a, b], i) => {
    if (i === windows.length - 1) return left;
    const part = total === 0 ? 0 : Math.round((quantity * (b - a)) / total);
    left -= part;
    return part;
  });
}
