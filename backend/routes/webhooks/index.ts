// POST /webhooks/github: the signature is checked over the raw body before anything else (wrong or
// missing: 401, nothing stored); the delivery is stored once per X-GitHub-Delivery (a redelivery is
// acknowledged and ignored) and processed by a job; the answer is 202 at once. Mounted before the
// JSON body parser, which would read the body first and cap it at 1 MB (GitHub sends up to 25 MB).
import Router from '@koa/router';
import type { Context } from 'koa';
import getRawBody from 'raw-body';
import { Webhooks } from '@octokit/webhooks';
import { receiveDelivery } from '../../commands/webhooks.ts';
import { GITHUB_EVENTS } from '../../commands/github-webhooks.ts';
import { AppError, BadRequestError, NotFoundError } from '../../lib/errors.ts';
import type { Deps } from '../deps.ts';
import { stripeClient } from '../../billing/stripe.ts';
import { STRIPE_EVENTS } from '../../commands/stripe-webhooks.ts';

const STRIPE_BODY_LIMIT = 4 * 1024 * 1024;
// Stripe's default: a signature older than 5 minutes is a replay.
const STRIPE_TOLERANCE_SECONDS = 300;

const GITHUB_BODY_LIMIT = 25 * 1024 * 1024;
const DELIVERY_ID = /^[A-Za-z0-9-]{1,100}$/;
const EVENT_NAME = /^[a-z_]{1,64}$/;

async function rawBody(ctx: Context, limit = GITHUB_BODY_LIMIT, sender = 'GitHub'): Promise<string> {
  try {
    return await getRawBody(ctx.req, { length: ctx.request.length, limit, encoding: 'utf8' });
  } catch (err) {
    if ((err as { status?: number }).status === 413) throw new AppError(413, 'payload_too_large', `The body is larger than the ${limit / 1024 / 1024} MB ${sender} sends at most.`);
    throw err;
  }
}

export function webhookRoutes({ config, knex, queues }: Deps): Router {
  const router = new Router({ prefix: '/webhooks' });
  const secret = config.github.webhookSecret;
  const github = secret ? new Webhooks({ secret }) : null;

  router.post('/github', async (ctx: Context) => {
    if (!github) throw new NotFoundError('Route');
    const body = await rawBody(ctx);
    const signature = ctx.get('X-Hub-Signature-256');
    // verify() compares in constant time; it throws on an empty body, which no signature covers.
    const valid = Boolean(signature && body) && (await github.verify(body, signature).catch(() => false));
    if (!valid) throw new AppError(401, 'invalid_signature', 'X-Hub-Signature-256 is missing or does not match the body: check that the webhook secret on GitHub is the GITHUB_WEBHOOK_SECRET of this server.');

    const event = ctx.get('X-GitHub-Event');
    const deliveryId = ctx.get('X-GitHub-Delivery');
    if (!EVENT_NAME.test(event)) throw new BadRequestError('invalid_event', 'X-GitHub-Event is missing or not an event name.');
    if (!DELIVERY_ID.test(deliveryId)) throw new BadRequestError('invalid_delivery', 'X-GitHub-Delivery is missing or not a delivery id.');
    if (event === 'ping') {
      ctx.body = { ok: true };
      return;
    }
    if (!ctx.is('application/json')) throw new AppError(415, 'unsupported_media_type', 'Set the webhook\'s content type to application/json on GitHub.');
    let payload: { action?: unknown } | null;
    try {
      payload = JSON.parse(body) as { action?: unknown } | null;
    } catch (err) {
      throw new AppError(400, 'invalid_json', `The body is not valid JSON: ${(err as Error).message}`);
    }
    if (!payload || typeof payload !== 'object') throw new AppError(400, 'invalid_json', 'The body is not a JSON object.');
    if (!(GITHUB_EVENTS as readonly string[]).includes(event)) {
      ctx.status = 202;
      ctx.body = { ignored: true, reason: `Rhone does not act on ${event} events.` };
      return;
    }
    const action = typeof payload.action === 'string' ? payload.action.slice(0, 100) : null;
    const { duplicate } = await receiveDelivery(knex, queues, { provider: 'github', deliveryId, event, action, payload });
    ctx.status = duplicate ? 200 : 202;
    ctx.body = duplicate ? { duplicate: true } : { accepted: true };
  });

  // POST /webhooks/stripe: Stripe-Signature checked over the raw body (wrong, missing or older than
  // 300 s: 400, nothing stored); then stored once per event id and applied by the webhooks job.
  const stripe = stripeClient(config);
  const stripeSecret = config.stripe.webhookSecret;
  router.post('/stripe', async (ctx: Context) => {
    if (!stripe || !stripeSecret) throw new NotFoundError('Route');
    const body = await rawBody(ctx, STRIPE_BODY_LIMIT, 'Stripe');
    let event: { id: string; type: string };
    try {
      event = stripe.webhooks.constructEvent(body, ctx.get('Stripe-Signature'), stripeSecret, STRIPE_TOLERANCE_SECONDS);
    } catch {
      throw new AppError(400, 'invalid_signature', 'Stripe-Signature is missing, too old, or does not match the body: check that the endpoint\'s signing secret is the STRIPE_WEBHOOK_SECRET of this server.');
    }
    if (!(STRIPE_EVENTS as readonly string[]).includes(event.type)) {
      ctx.body = { ignored: true, reason: `Rhone does not act on ${event.type} events.` };
      return;
    }
    if (!/^evt_[A-Za-z0-9]{1,100}$/.test(event.id)) throw new BadRequestError('invalid_event', 'The event id is not a Stripe event id.');
    const { duplicate } = await receiveDelivery(knex, queues, { provider: 'stripe', deliveryId: event.id, event: event.type, action: null, payload: event });
    ctx.status = duplicate ? 200 : 202;
    ctx.body = duplicate ? { duplicate: true } : { accepted: true };
  });

  return router;
}
