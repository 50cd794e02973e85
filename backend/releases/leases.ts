// Leases on every machine a release touches, as flyctl holds them (machines_deploymachinesapp.go:
// AcquireLeases with --lease-timeout 13 s, StartBackgroundLeaseRefresh, deferred ReleaseLeases;
// internal/machine/leasable_machine.go refreshes every (ttl - 1 s) / 3). While we hold one, a
// zombie worker of an earlier attempt, the reaper or a person running `fly machine ...` gets a
// 409 instead of racing us; and a machine someone else holds is one we do not touch.
import { setTimeout as delay } from 'node:timers/promises';
import type { FlyClient } from '../providers/fly/client.ts';
import { FlyApiError } from '../providers/fly/errors.ts';

/** A machine someone else holds a lease on; `detail` is Fly's own words (owner, description, expiry). */
export class LeaseHeldError extends Error {
  constructor(
    readonly machineId: string,
    readonly detail: string,
  ) {
    super(`machine ${machineId} is leased by someone else: ${detail}`);
    this.name = 'LeaseHeldError';
  }
}

export interface LeaseTiming {
  /** Lease TTL in seconds; refreshed in the background at a third of it. */
  leaseTtlS: number;
  /** How long to wait for someone else's lease to go before giving up. */
  leaseWaitMs: number;
}

export class LeaseSet {
  private readonly nonces = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: FlyClient,
    private readonly app: string,
    private readonly description: string,
    private readonly timing: LeaseTiming,
    private readonly warn: (line: string) => void,
  ) {}

  /** The nonce to send on a change to this machine (undefined when we hold no lease on it). */
  nonce(id: string): string | undefined {
    return this.nonces.get(id);
  }

  /**
   * Takes the lease, waiting while someone else holds it (fly-go's AcquireLease retries on 409
   * too); throws LeaseHeldError when it is still held at the end of the wait.
   */
  async acquire(id: string, signal?: AbortSignal): Promise<void> {
    const until = Date.now() + this.timing.leaseWaitMs;
    for (;;) {
      try {
        const lease = await this.client.acquireLease(this.app, id, this.timing.leaseTtlS, this.description);
        this.nonces.set(id, lease.nonce);
        this.startRefresh();
        return;
      } catch (err) {
        if (!(err instanceof FlyApiError && err.status === 409)) throw err;
        if (Date.now() >= until || signal?.aborted) throw new LeaseHeldError(id, err.detail);
        await delay(Math.min(1000, Math.max(50, this.timing.leaseWaitMs / 5)));
      }
    }
  }

  /** Forgets a machine that is gone: there is nothing left to refresh or release. */
  forget(id: string): void {
    this.nonces.delete(id);
  }

  private startRefresh(): void {
    if (this.timer) return;
    const everyMs = Math.max(100, ((this.timing.leaseTtlS - 1) * 1000) / 3);
    this.timer = setInterval(() => void this.refresh(), everyMs);
    this.timer.unref();
  }

  private async refresh(): Promise<void> {
    await Promise.all(
      [...this.nonces].map(async ([id, nonce]) => {
        try {
          await this.client.acquireLease(this.app, id, this.timing.leaseTtlS, this.description, nonce);
        } catch (err) {
          // A machine destroyed meanwhile has no lease to refresh (flyctl stops on "machine not found").
          if (err instanceof FlyApiError && err.status === 404) return this.forget(id);
          this.warn(`Could not refresh the lease on machine ${id.slice(0, 8)}: ${(err as Error).message}`);
        }
      }),
    );
  }

  /** Releases every lease still held; a failure only lets a lease run out at its TTL. */
  async releaseAll(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const held = [...this.nonces];
    this.nonces.clear();
    await Promise.allSettled(held.map(([id, nonce]) => this.client.releaseLease(this.app, id, nonce)));
  }
}
