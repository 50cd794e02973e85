// The state the local Machines API, its supervisor and the router share, with the look-ups every
// handler needs (an app or machine, or a 404; a lease, or a 409).
import type { IncomingHttpHeaders } from 'node:http';
import { conflict, notFound } from './errors.ts';
import type { LocalLogger } from './log.ts';
import type { AppRecord, MachineRecord, Store } from './store.ts';
import { resolveWithDns, type HostResolver } from './certificates.ts';
import type { Supervisor } from './supervisor.ts';
import { ConnectionLedger } from './connections.ts';

export const LEASE_HEADER = 'fly-machine-lease-nonce';

export class Runtime {
  /** The router's WebSocket connections, per machine (in memory: a drain is read seconds after it happens). */
  readonly connections = new ConnectionLedger();

  constructor(
    readonly dataDir: string,
    readonly store: Store,
    readonly supervisor: Supervisor,
    readonly log: LocalLogger,
    /** `{label}.<appsDomain>` reaches app rhone-{label}; "localhost" in local mode. */
    readonly appsDomain: string,
    /** How a certificate's hostname is resolved, to see whether it points at this machine. */
    readonly resolveHost: HostResolver = resolveWithDns,
  ) {}

  app(name: string): AppRecord {
    const app = this.store.state.apps[name];
    if (!app) throw notFound(`app "${name}" was not found`);
    return app;
  }

  /** A machine of the app; destroyed ones are still found until they are forgotten. */
  machine(appName: string, id: string): MachineRecord {
    this.app(appName);
    const m = this.store.state.machines[id];
    if (!m || m.app !== appName) throw notFound(`machine "${id}" was not found in app "${appName}"`);
    return m;
  }

  /** A machine that can still be changed: a destroyed one is a 404 here, as on Fly. */
  liveMachine(appName: string, id: string): MachineRecord {
    const m = this.machine(appName, id);
    if (m.state === 'destroyed') throw notFound(`machine "${id}" has been destroyed`);
    return m;
  }

  machinesOf(appName: string): MachineRecord[] {
    return Object.values(this.store.state.machines).filter((m) => m.app === appName);
  }

  /** The machine's lease, dropped once it has expired. */
  activeLease(m: MachineRecord) {
    if (m.lease && m.lease.expiresAt * 1000 <= Date.now()) m.lease = undefined;
    return m.lease;
  }

  /** While a machine is leased, a change needs the lease's nonce in fly-machine-lease-nonce. */
  requireLease(m: MachineRecord, headers: IncomingHttpHeaders): void {
    const lease = this.activeLease(m);
    if (!lease) return;
    if (headers[LEASE_HEADER] === lease.nonce) return;
    throw conflict(
      `machine ${m.id} is leased by ${lease.owner}${lease.description ? ` (${lease.description})` : ''} until ` +
        `${new Date(lease.expiresAt * 1000).toISOString()}; send its nonce in the ${LEASE_HEADER} header`,
    );
  }

  addBytesOut(app: string, bytes: number): void {
    if (bytes <= 0) return;
    this.store.state.bytesOut[app] = (this.store.state.bytesOut[app] ?? 0) + bytes;
    this.store.changedLazily();
  }

  bytesOut(app: string): number {
    return this.store.state.bytesOut[app] ?? 0;
  }
}
