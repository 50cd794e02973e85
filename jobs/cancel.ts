// Cancel requests reach the worker running a deployment at once through Redis pub/sub (the
// heartbeat also reads them from the row, so a lost message only delays a cancel by seconds).
import type { Redis } from 'ioredis';
import { CANCEL_CHANNEL } from '../backend/commands/deployments.ts';
import { createRedis } from '../backend/redis.ts';

const watchers = new Map<string, Set<() => void>>();
let subscriber: Redis | undefined;

function ensureSubscriber(): void {
  if (subscriber) return;
  subscriber = createRedis(undefined, { maxRetriesPerRequest: null });
  subscriber.on('error', () => undefined); // reconnects on its own; the heartbeat covers the gap
  void subscriber.subscribe(CANCEL_CHANNEL).catch(() => undefined);
  subscriber.on('message', (_channel: string, id: string) => {
    for (const fn of watchers.get(id) ?? []) fn();
  });
}

export function watchCancel(deploymentId: string, onCancel: () => void): () => void {
  ensureSubscriber();
  let set = watchers.get(deploymentId);
  if (!set) watchers.set(deploymentId, (set = new Set()));
  set.add(onCancel);
  return () => {
    set.delete(onCancel);
    if (set.size === 0) watchers.delete(deploymentId);
  };
}

export async function closeCancelWatch(): Promise<void> {
  const s = subscriber;
  subscriber = undefined;
  if (s) await s.quit().catch(() => s.disconnect());
}
