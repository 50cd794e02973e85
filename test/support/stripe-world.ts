// What the Stripe tests share: a fake Stripe, an api configured to use it (queues under a prefix of
// their own), a webhooks worker, and events signed with stripe-node's own test header helper.
import { randomUUID } from 'node:crypto';
import type { Worker } from 'bullmq';
import Stripe from 'stripe';
import { pino } from 'pino';
import { db } from '../../backend/db.ts';
import { getConfig, type Config } from '../../backend/config.ts';
import { startWorkers } from '../../jobs/worker.ts';
import type { QueueContext } from '../../jobs/queues.ts';
import { startTestServer, type TestServer } from '../http.ts';
import { FakeStripe } from './fake-stripe.ts';

export interface StripeWorld {
  fake: FakeStripe;
  config: Config;
  server: TestServer;
  queues: QueueContext;
}

/** Mocha hooks: a fresh fake Stripe and api per test, and (optionally) a webhooks worker. */
export function useStripeWorld({ worker = false } = {}): StripeWorld {
  const world = {} as StripeWorld;
  let workers: Worker[] = [];
  beforeEach(async () => {
    world.fake = await new FakeStripe().start();
    world.config = { ...getConfig(), stripe: world.fake.stripeConfig };
    world.queues = { connection: { url: getConfig().redisUrl, maxRetriesPerRequest: null }, prefix: `t-${randomUUID()}` };
    world.server = await startTestServer({ config: world.config, queues: world.queues });
    if (worker) workers = startWorkers({ ...world.queues, knex: db(), log: pino({ level: 'silent' }), config: world.config, only: ['webhooks'] });
  });
  afterEach(async () => {
    await Promise.all(workers.map((w) => w.close()));
    workers = [];
    await world.server.close();
    await world.fake.close();
  });
  return world;
}

let eventSeq = 0;

/** A Stripe event as Stripe sends it. `created` in Unix seconds. */
export function stripeEvent(type: string, object: Record<string, unknown>, created = Math.floor(Date.now() / 1000)) {
  eventSeq += 1;
  return { id: `evt_test${Date.now()}${eventSeq}`, object: 'event', api_version: '2026-10-28.endive', created, livemode: false, type, data: { object } };
}

const signer = new Stripe('sk_test_signing_only');

/** POSTs the event to /webhooks/stripe, signed with `secret` at `timestamp` (Unix seconds). */
export async function deliverStripe(baseUrl: string, event: unknown, options: { secret?: string; timestamp?: number; signature?: string | null } = {}) {
  const payload = JSON.stringify(event);
  const header =
    options.signature !== undefined
      ? options.signature
      : signer.webhooks.generateTestHeaderString({ payload, secret: options.secret ?? 'whsec_fake_secret', timestamp: options.timestamp });
  const res = await fetch(`${baseUrl}/webhooks/stripe`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(header === null ? {} : { 'stripe-signature': header }) },
    body: payload,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
