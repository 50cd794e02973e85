// What the local runtime remembers across restarts, in one JSON file written atomically
// (temp file + rename) to `${dataDir}/machines/state.json`. It holds app secrets in plain text:
// it is the local stand-in for Fly, so the file is created with mode 0600.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { MachineConfig, MachineEvent, MachineState } from '../backend/providers/fly/types.ts';

export interface SecretRecord {
  value: string;
  digest: string;
  createdAt: string;
  updatedAt: string;
}

export interface CertificateRecord {
  hostname: string;
  status: 'active' | 'pending_validation';
  createdAt: string;
  updatedAt: string;
  /** Addresses the hostname resolved to at the last check. */
  resolved: string[];
}

export interface IpRecord {
  ip: string;
  type: string;
  shared: boolean;
  region: string;
  serviceName?: string;
  createdAt: string;
}

export interface AppRecord {
  id: string;
  name: string;
  orgSlug: string;
  network: string;
  createdAt: number;
  idempotencyKey?: string;
  secretsVersion: number;
  secrets: Record<string, SecretRecord>;
  certificates: Record<string, CertificateRecord>;
  ips: IpRecord[];
}

export interface LeaseRecord {
  nonce: string;
  /** Unix seconds, as Fly's Lease.expires_at. */
  expiresAt: number;
  owner: string;
  description?: string;
  version: string;
}

export interface MachineRecord {
  id: string;
  name: string;
  app: string;
  region: string;
  state: MachineState;
  version: string;
  config: MachineConfig;
  cordoned: boolean;
  createdAt: string;
  updatedAt: string;
  /** Newest first, at most EVENTS_KEPT. */
  events: MachineEvent[];
  lease?: LeaseRecord;
  skipSecrets: boolean;
  minSecretsVersion?: number;
  /** internal_port → host port of the running process. */
  hostPorts: Record<string, number>;
  /** The host port given to the process as PORT. */
  primaryPort?: number;
  pid?: number;
  /** Kernel start time of pid, so a reused pid is never mistaken for ours. */
  pidStart?: string;
  restarts: number;
  destroyedAt?: string;
}

export interface PersistedState {
  format: 1;
  apps: Record<string, AppRecord>;
  machines: Record<string, MachineRecord>;
  /** Bytes the router sent to clients, per app. */
  bytesOut: Record<string, number>;
}

export const EVENTS_KEPT = 50;
/** Destroyed machines stay visible (include_deleted, wait?state=destroyed) this long. */
const DESTROYED_KEPT_MS = 60 * 60 * 1000;

export class Store {
  readonly file: string;
  state: PersistedState;
  private pending: NodeJS.Immediate | undefined;
  private lazy: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(dataDir: string) {
    const dir = path.join(dataDir, 'machines');
    mkdirSync(dir, { recursive: true });
    this.file = path.join(dir, 'state.json');
    this.state = Store.read(this.file);
  }

  private static read(file: string): PersistedState {
    let raw: string;
    try {
      raw = readFileSync(file, 'utf8');
    } catch {
      return { format: 1, apps: {}, machines: {}, bytesOut: {} };
    }
    let parsed: Partial<PersistedState>;
    try {
      parsed = JSON.parse(raw) as Partial<PersistedState>;
    } catch (err) {
      throw new Error(`${file} is not valid JSON (${(err as Error).message}); move it away to start the local runtime empty`);
    }
    return { format: 1, apps: parsed.apps ?? {}, machines: parsed.machines ?? {}, bytesOut: parsed.bytesOut ?? {} };
  }

  /** Saves soon; many changes in one tick make one write. */
  changed(): void {
    if (this.closed) return;
    this.pending ??= setImmediate(() => {
      this.pending = undefined;
      this.save();
    });
  }

  /** Saves within a few seconds: for counters that change on every proxied request. */
  changedLazily(): void {
    if (this.closed || this.lazy || this.pending) return;
    this.lazy = setTimeout(() => {
      this.lazy = undefined;
      this.save();
    }, 2_000);
    this.lazy.unref();
  }

  /** Saves now (temp file + rename, so a crash leaves the old or the new file, never half of one). */
  save(): void {
    if (this.closed) return;
    if (this.pending) clearImmediate(this.pending);
    if (this.lazy) clearTimeout(this.lazy);
    this.pending = undefined;
    this.lazy = undefined;
    const cutoff = Date.now() - DESTROYED_KEPT_MS;
    for (const [id, m] of Object.entries(this.state.machines)) {
      if (m.destroyedAt && Date.parse(m.destroyedAt) < cutoff) delete this.state.machines[id];
    }
    const tmp = `${this.file}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(this.state), { mode: 0o600 });
    renameSync(tmp, this.file);
  }

  /** Saves one last time; after this the file is left alone, for the next runtime to read. */
  close(): void {
    this.save();
    this.closed = true;
  }
}
