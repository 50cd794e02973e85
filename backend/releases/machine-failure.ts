// Why a new machine died, in words, from its events: the exit code and whether the kernel killed it
// for memory. Production has no machine output to show (Fly's log API is not wired in), so the
// events are what the failure reason can carry; a 256 MB machine that runs out of memory is the
// likeliest crash. Fly puts exit_event on events[].request and on request.MonitorEvent; fly-go's
// MachineRequest.GetExitCode prefers the MonitorEvent one (machine_types.go), so do we.
import type { FlyClient } from '../providers/fly/client.ts';
import type { MachineEvent } from '../providers/fly/types.ts';

interface ExitEvent {
  exit_code?: number;
  oom_killed?: boolean;
  requested_stop?: boolean;
}

export function exitEvent(event: MachineEvent): ExitEvent | undefined {
  const request = event.request as { exit_event?: ExitEvent; MonitorEvent?: { exit_event?: ExitEvent } } | undefined;
  return request?.MonitorEvent?.exit_event ?? request?.exit_event;
}

export interface Exits {
  count: number;
  /** The newest exit (events come newest first). */
  last?: ExitEvent;
}

export async function readExits(client: FlyClient, app: string, id: string): Promise<Exits> {
  const events = await client.listEvents(app, id).catch(() => []);
  const exits = events.filter((e) => e.type === 'exit');
  return { count: exits.length, last: exits[0] ? exitEvent(exits[0]) : undefined };
}

/** ", and its process exited 3 times (last with exit code 137, killed because it ran out of memory)"; or "". */
export function describeExits(exits: Exits, machineSize: string): string {
  if (exits.count === 0) return '';
  const parts: string[] = [];
  if (exits.last?.exit_code !== undefined) parts.push(`last with exit code ${exits.last.exit_code}`);
  if (exits.last?.oom_killed)
    parts.push(`killed because it ran out of memory: a ${machineSize} machine may be too small for the app, choose a larger size or lower its memory use`);
  return `, and its process exited ${exits.count} time${exits.count === 1 ? '' : 's'}${parts.length > 0 ? ` (${parts.join(', ')})` : ''}`;
}
