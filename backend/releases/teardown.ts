// Retiring the old ("blue") machines once traffic has moved, as flyctl's strategy_bluegreen.go does
// it (CordonBlueMachines, StopBlueMachines, WaitForBlueMachinesToBeStopped, DestroyBlueMachines):
// - a machine whose host is not `ok` ("unreachable", "unknown", unset: hostIsOk) cannot answer a
//   cordon or a stop, so it gets neither and is force-destroyed without a lease nonce;
// - cordon, stop and destroy are idempotent, so transient failures are retried (5 attempts, 500 ms
//   doubling, teardownRetryAttempts/Delay); a cordon or stop that still fails only loses the
//   graceful window, the destroy (force: kill) follows anyway;
// - the wait for `stopped` carries no version (internal/machine/wait.go WaitForStartOrStop sends
//   only the state): the version from the listing is stale after our cordon and metadata writes;
// - nothing here throws: the release is already done. A machine that cannot be destroyed keeps its
//   safe_to_destroy tag and is removed by the next release, and the log says so.
import { setTimeout as delay } from 'node:timers/promises';
import type { FlyClient } from '../providers/fly/client.ts';
import { isTransient } from '../providers/fly/errors.ts';
import type { Machine } from '../providers/fly/types.ts';
import type { LeaseSet } from './leases.ts';
import { durationMs, STOP_TIMEOUT } from './machine-config.ts';

export interface TeardownTiming {
  proxyLearnMs: number;
  proxyForgetMs: number;
  teardownRetryAttempts: number;
  teardownRetryMs: number;
}

export const hostIsOk = (m: Machine) => m.host_status === 'ok';
const short = (id: string) => id.slice(0, 8);

export async function retried(timing: TeardownTiming, op: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (err) {
      if (!isTransient(err) || attempt >= timing.teardownRetryAttempts) throw err;
      await delay(Math.min(10_000, timing.teardownRetryMs * 2 ** (attempt - 1)));
    }
  }
}

/** Cordons, drains (SIGTERM), stops and destroys the old machines; returns when SIGTERM was sent. */
export async function retireOldMachines(
  client: FlyClient,
  app: string,
  blue: Machine[],
  leases: LeaseSet,
  timing: TeardownTiming,
  log: (line: string) => void,
): Promise<number | undefined> {
  if (blue.length === 0) return undefined;
  const reachable = blue.filter(hostIsOk);
  const warn = (m: Machine, what: string, err: unknown) =>
    log(`Could not ${what} old machine ${short(m.id)} (${(err as Error).message}); it is destroyed anyway`);

  await delay(timing.proxyLearnMs);
  await Promise.all(reachable.map((m) => retried(timing, () => client.cordon(app, m.id, leases.nonce(m.id))).catch((err) => warn(m, 'cordon', err))));
  await delay(timing.proxyForgetMs);
  const drainStartedAt = Date.now();
  log(`Stopping ${blue.length} old machine${blue.length === 1 ? '' : 's'} (SIGTERM, ${STOP_TIMEOUT} to drain connections)`);
  for (const m of blue)
    if (!hostIsOk(m)) log(`Old machine ${short(m.id)} is on a host that is ${m.host_status ?? 'not reporting'}; destroying it without a drain`);

  await Promise.all(
    blue.map(async (m) => {
      if (hostIsOk(m) && (m.state === 'started' || m.state === 'starting')) {
        const stopped = await retried(timing, () => client.stopMachine(app, m.id, { signal: 'SIGTERM', timeout: STOP_TIMEOUT }, leases.nonce(m.id)))
          .then(() => true)
          .catch((err) => (warn(m, 'stop', err), false));
        if (stopped) {
          await client
            .waitForState(app, m.id, 'stopped', { timeoutMs: durationMs(STOP_TIMEOUT) + 15_000 })
            .then(() => log(`Old machine ${short(m.id)} stopped`))
            .catch((err) => warn(m, 'see the stop of', err));
        }
      }
      // No lease is held on a machine of a host that is not ok: send no nonce (flyctl: "a stale
      // nonce from the list response could otherwise make flaps reject the destroy").
      const nonce = hostIsOk(m) ? leases.nonce(m.id) : undefined;
      try {
        await retried(timing, () => client.destroyMachine(app, m.id, { force: true }, nonce));
        leases.forget(m.id);
      } catch (err) {
        log(`Could not destroy old machine ${short(m.id)} (${(err as Error).message}); it takes no traffic and the next release removes it`);
      }
    }),
  );
  return drainStartedAt;
}
