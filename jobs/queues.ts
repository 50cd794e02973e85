// The queue registry: every queue's name, payload schema, attempts, backoff and timeout, listed
// explicitly. Payloads carry ids, never secrets; state lives on the rows they point to.
import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import { z } from 'zod';

export interface QueueDefinition<S extends z.ZodType = z.ZodType> {
  name: string;
  payload: S;
  options: JobsOptions;
  /** How long one attempt may run before it is treated as stuck. */
  timeoutMs: number;
  /** How many jobs of this queue one worker process runs at once. */
  concurrency: number;
}

function define<S extends z.ZodType>(d: QueueDefinition<S>): QueueDefinition<S> {
  return d;
}

const deploymentId = z.strictObject({ deploymentId: z.uuid() });
const backoff = { type: 'exponential', delay: 2000 } as const;
const keep = { removeOnComplete: { age: 24 * 3600, count: 1000 }, removeOnFail: { age: 7 * 24 * 3600 } };

export const QUEUES = {
  clone: define({ name: 'clone', payload: deploymentId, options: { attempts: 3, backoff, ...keep }, timeoutMs: 10 * 60_000, concurrency: 2 }),
  analyze: define({ name: 'analyze', payload: deploymentId, options: { attempts: 3, backoff, ...keep }, timeoutMs: 5 * 60_000, concurrency: 2 }),
  build: define({ name: 'build', payload: deploymentId, options: { attempts: 2, backoff, ...keep }, timeoutMs: 30 * 60_000, concurrency: 1 }),
  deploy: define({ name: 'deploy', payload: deploymentId, options: { attempts: 3, backoff, ...keep }, timeoutMs: 15 * 60_000, concurrency: 2 }),
  pollUsage: define({ name: 'poll-usage', payload: z.strictObject({}), options: { attempts: 3, backoff, ...keep }, timeoutMs: 4 * 60_000, concurrency: 1 }),
  uploadUsage: define({
    name: 'upload-usage',
    payload: z.strictObject({}),
    options: { attempts: 5, backoff, ...keep },
    timeoutMs: 30 * 60_000,
    concurrency: 1,
  }),
  reaper: define({ name: 'reaper', payload: z.strictObject({}), options: { attempts: 1, ...keep }, timeoutMs: 60_000, concurrency: 1 }),
  housekeeping: define({
    name: 'housekeeping',
    payload: z.strictObject({}),
    options: { attempts: 3, backoff, ...keep },
    timeoutMs: 5 * 60_000,
    concurrency: 1,
  }),
  webhooks: define({
    name: 'webhooks',
    payload: z.strictObject({ provider: z.enum(['github', 'stripe']), deliveryId: z.string().min(1) }),
    options: { attempts: 5, backoff, ...keep },
    timeoutMs: 2 * 60_000,
    concurrency: 4,
  }),
  // Removes a deleted app's Fly app (backend/commands/apps.ts deleteApp, jobs/processors/app-teardown.ts).
  appTeardown: define({
    name: 'app-teardown',
    payload: z.strictObject({ teardownId: z.uuid() }),
    options: { attempts: 8, backoff: { type: 'exponential', delay: 5000 }, ...keep },
    timeoutMs: 2 * 60_000,
    concurrency: 2,
  }),
  // Checks custom domains whose certificate is pending and due (every minute, from the scheduler).
  checkCertificates: define({
    name: 'check-certificates',
    payload: z.strictObject({}),
    options: { attempts: 1, ...keep },
    timeoutMs: 5 * 60_000,
    concurrency: 1,
  }),
  // Reports a deployment's state to GitHub as a commit status; GitHub may be down for a while.
  commitStatus: define({
    name: 'commit-status',
    payload: deploymentId,
    options: { attempts: 8, backoff: { type: 'exponential', delay: 5000 }, ...keep },
    timeoutMs: 60_000,
    concurrency: 4,
  }),
} as const;

export type QueueKey = keyof typeof QUEUES;
export type Payload<K extends QueueKey> = z.infer<(typeof QUEUES)[K]['payload']>;

export interface QueueContext {
  connection: ConnectionOptions;
  /** Redis key prefix; tests use their own so they never see each other's jobs. */
  prefix?: string;
}

const open = new Map<string, Queue>();

export function queue(ctx: QueueContext, key: QueueKey): Queue {
  const id = `${ctx.prefix ?? 'bull'}:${QUEUES[key].name}`;
  let q = open.get(id);
  if (!q) {
    q = new Queue(QUEUES[key].name, { connection: ctx.connection, prefix: ctx.prefix, defaultJobOptions: QUEUES[key].options });
    open.set(id, q);
  }
  return q;
}

/**
 * Validates the payload and enqueues. Call only after the transaction that wrote the job's row
 * has committed. A jobId makes the enqueue idempotent: the same stage of the same deployment is
 * one job however often it is asked for.
 */
export async function enqueue<K extends QueueKey>(ctx: QueueContext, key: K, payload: Payload<K>, jobId?: string) {
  const data = QUEUES[key].payload.parse(payload);
  return queue(ctx, key).add(QUEUES[key].name, data, jobId ? { jobId } : {});
}

export async function closeQueues(): Promise<void> {
  await Promise.allSettled([...open.values()].map((q) => q.close()));
  open.clear();
}
