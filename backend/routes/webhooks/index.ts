// POST /webhooks/github: the signature is checked over the raw body before anything else (wrong or
// missing: 401, nothing stored); the delivery is stored once per X-GitHub-Delivery (a redelivery is
// acknowledged and ignored) and processed by a job; the answer is 202 at once. Mounted before the
// JSON body parser, which would read the body first and cap it at 1 MB (GitHub sends up to 25 MB).
// What reading an unauthenticated body may cost is bounded first: see intake.ts.
import Router from '@koa/router';
import type { Context } from 'koa';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { receiveDelivery } from '../../commands/webhooks.ts';
import { GITHUB_EVENTS } from '../../commands/github-webhooks.ts';
import { AppError, BadRequestError, NotFoundError } from '../../lib/errors.ts';
import type { Deps } from '../deps.ts';
import { stripeClient } from '../../billing/stripe.ts';
import { STRIPE_EVENTS } from '../../commands/stripe-webhooks.ts';
import { checkDeclaredLength, readChunks, refuseUnread, webhookRateLimit, WebhookGate, TooManyInFlightError } from './intake.ts';

// Stripe documents no size cap. An event embeds one object in its data, whose lists Stripe truncates
// (list objects carry the first page and has_more, e.g. an invoice's lines) and whose metadata holds
// at most 50 keys of 500 characters (docs.stripe.com/api/metadata): the events Rhone takes
// (STRIPE_EVENTS) are a few KB. 1 MB leaves a hundredfold margin.
const STRIPE_BODY_LIMIT = 1024 * 1024;
// Stripe's default: a signature older than 5 minutes is a replay.
const STRIPE_TOLERANCE_SECONDS = 300;
// A Stripe-Signature header has a timestamp and at least one v1 signature: "t=…,v1=…".
const STRIPE_SIGNATURE = /(^|,)t=\d+(,|$)/;

// GitHub: "Payloads are capped at 25 MB. If an event generates a larger payload, GitHub will not
// deliver a payload for that webhook event" (docs.github.com, Webhook events and payloads, Payload
// cap). Nothing lower is documented for what Rhone takes (GITHUB_EVENTS): a push lists up to 2048
// commits, each with its added, removed and modified files, and installation events list
// repositories, so the cap stays at 25 MB; what holding such bodies may cost is bounded by intake.ts.
const GITHUB_BODY_LIMIT = 25 * 1024 * 1024;
const GITHUB_SIGNATURE = /^sha256=([0-9a-f]{64})$/i;
const DELIVERY_ID = /^[A-Za-z0-9-]{1,100}$/;
const EVENT_NAME = /^[a-z_]{1,64}$/;

const BAD_GITHUB_SIGNATURE =
  'X-Hub-Signature-256 is missing or does not match the body: check that the webhook secret on GitHub is the GITHUB_WEBHOOK_SECRET of this server.';

/** A slot to read one body in (waiting a little for one), or a refusal (with Retry-After) when too many are being read. */
async function admit(ctx: Context, gate: WebhookGate): Promise<() => void> {
  const gone = new AbortController();
  const onClose = () => gone.abort();
  ctx.req.once('close', onClose);
  try {
    return await gate.enter(ctx.ip, gone.signal);
  } catch (err) {
    if (err instanceof TooManyInFlightError) ctx.set('Retry-After', String(err.retryAfterSeconds));
    return refuseUnread(ctx, err as AppError);
  } finally {
    ctx.req.off('close', onClose);
  }
}

/** The body, read within the limits, with the HMAC-SHA256 of it under `secret` computed as it came. */
async function readSigned(ctx: Context, gate: WebhookGate, limit: number, sender: string, secret: string): Promise<{ body: Buffer; digest: Buffer }> {
  const release = await admit(ctx, gate);
  try {
    const hmac = createHmac('sha256', secret);
    const chunks = await readChunks(ctx, limit, sender, (chunk) => hmac.update(chunk));
    return { body: Buffer.concat(chunks), digest: hmac.digest() };
  } finally {
    release();
  }
}

export function webhookRoutes({ config, knex, queues, redis }: Deps, gate = new WebhookGate(config.webhooks)): Router {
  const router = new Router({ prefix: '/webhooks' });
  const secret = config.github.webhookSecret;
  const rateLimit = webhookRateLimit(redis, config.webhooks.perMinutePerAddress);

  router.post('/github', async (ctx: Context) => {
    if (!secret) throw new NotFoundError('Route');
    const signature = GITHUB_SIGNATURE.exec(ctx.get('X-Hub-Signature-256'));
    if (!signature) refuseUnread(ctx, new AppError(401, 'invalid_signature', BAD_GITHUB_SIGNATURE));
    checkDeclaredLength(ctx, GITHUB_BODY_LIMIT, 'GitHub');
    await rateLimit(ctx).catch((err: AppError) => refuseUnread(ctx, err));
    const { body: bytes, digest } = await readSigned(ctx, gate, GITHUB_BODY_LIMIT, 'GitHub', secret);
    // No signature covers an empty body; the comparison takes the same time wherever they differ.
    const valid = bytes.length > 0 && timingSafeEqual(digest, Buffer.from(signature[1], 'hex'));
    if (!valid) throw new AppError(401, 'invalid_signature', BAD_GITHUB_SIGNATURE);
    const body = bytes.toString('utf8');

    const event = ctx.get('X-GitHub-Event');
    const deliveryId = ctx.get('X-GitHub-Delivery');
    if (!EVENT_NAME.test(event)) throw new BadRequestError('invalid_event', 'X-GitHub-Event is missing or not an event name.');
    if (!DELIVERY_ID.test(deliveryId)) throw new BadRequestError('invalid_delivery', 'X-GitHub-Delivery is missing or not a delivery id.');
    if (event === 'ping') {
      ctx.body = { ok: true };
      return;
    }
    if (!ctx.is('application/json')) throw new AppError(415, 'unsupported_media_type', "Set the webhook's content type to application/json on GitHub.");
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
  const badStripeSignature = () =>
    new AppError(
      400,
      'invalid_signature',
      "Stripe-Signature is missing, too old, or does not match the body: check that the endpoint's signing secret is the STRIPE_WEBHOOK_SECRET of this server.",
    );
  router.post('/stripe', async (ctx: Context) => {
    if (!stripe || !stripeSecret) throw new NotFoundError('Route');
    if (!STRIPE_SIGNATURE.test(ctx.get('Stripe-Signature')) || !ctx.get('Stripe-Signature').includes('v1=')) refuseUnread(ctx, badStripeSignature());
    checkDeclaredLength(ctx, STRIPE_BODY_LIMIT, 'Stripe');
    await rateLimit(ctx).catch((err: AppError) => refuseUnread(ctx, err));
    // Stripe signs "<t>.<body>"; stripe-node checks it (several v1 signatures, the tolerance) on the
    // whole body, which the 1 MB cap keeps small.
    const release = await admit(ctx, gate);
    let body: string;
    try {
      body = Buffer.concat(await readChunks(ctx, STRIPE_BODY_LIMIT, 'Stripe', () => undefined)).toString('utf8');
    } finally {
      release();
    }
    let event: { id: string; type: string };
    try {
      event = stripe.webhooks.constructEvent(body, ctx.get('Stripe-Signature'), stripeSecret, STRIPE_TOLERANCE_SECONDS);
    } catch {
      throw badStripeSignature();
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
