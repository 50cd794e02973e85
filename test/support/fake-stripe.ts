// A fake Stripe API on node:http that the real stripe-node client talks to (host/port/protocol
// settings). It speaks what Rhone uses: form-encoded bodies, Stripe's error JSON and its
// `stripe-should-retry` header, Bearer key checks, idempotency keys; customers, products, prices
// (lookup keys, transfer_lookup_key), billing meters, meter events (identifier uniqueness and the
// one-concurrent-call-per-customer-and-meter rule, with a configurable latency), Checkout and portal
// sessions, and subscriptions that a test puts in place.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

type Obj = Record<string, unknown>;

export interface MeterEventRecord {
  eventName: string;
  customer: string;
  value: number;
  identifier: string;
  timestamp: number;
}

class StripeFail extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly code?: string,
    readonly shouldRetry?: boolean,
  ) {
    super(message);
  }
}

/** Stripe's form encoding (`a[b][0][c]=v`) back into objects; numeric keys make arrays. */
export function parseForm(body: string): Obj {
  const root: Obj = {};
  for (const [key, value] of new URLSearchParams(body)) {
    const path = key.replace(/\]/g, '').split('[');
    let node: Obj = root;
    path.forEach((part, i) => {
      const last = i === path.length - 1;
      const name = part === '' ? String(Object.keys(node).length) : part;
      if (last) node[name] = value;
      else node = (node[name] ??= {}) as Obj;
    });
  }
  return arrays(root) as Obj;
}

function arrays(value: unknown): unknown {
  if (!value || typeof value !== 'object') return value;
  const o = value as Obj;
  const keys = Object.keys(o);
  if (keys.length > 0 && keys.every((k, i) => k === String(i))) return keys.map((k) => arrays(o[k]));
  return Object.fromEntries(keys.map((k) => [k, arrays(o[k])]));
}

const list = (data: unknown[], url: string) => ({ object: 'list', data, has_more: false, url });

export class FakeStripe {
  readonly apiKey: string;
  /** Added before a meter event is answered (Stripe's round trip). */
  meterEventLatencyMs: number;
  url = '';
  customers = new Map<string, Obj>();
  products = new Map<string, Obj>();
  prices = new Map<string, Obj>();
  meters = new Map<string, Obj>();
  subscriptions = new Map<string, Obj>();
  checkoutSessions: Obj[] = [];
  portalSessions: Obj[] = [];
  /** Meter events Stripe accepted, by identifier. */
  meterEvents = new Map<string, MeterEventRecord>();
  stats = { meterEventCalls: 0, duplicateIdentifiers: 0, rateLimited: 0, maxInFlight: 0, unauthorized: 0 };
  /** Answers to give instead of the real one, oldest first: `{status, times}` per path. */
  private readonly injected: { path: string; status: number; times: number }[] = [];
  private readonly inFlight = new Set<string>();
  private readonly idempotent = new Map<string, { status: number; body: unknown }>();
  private server?: Server;
  private seq = 0;

  constructor(options: { apiKey?: string; meterEventLatencyMs?: number } = {}) {
    this.apiKey = options.apiKey ?? 'sk_test_fake_0123456789';
    this.meterEventLatencyMs = options.meterEventLatencyMs ?? 0;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    await new Promise<void>((resolve) => {
      this.server!.close(() => resolve());
      this.server!.closeAllConnections();
    });
  }

  /** Settings for Rhone's config: this server and its key. */
  get stripeConfig() {
    return { secretKey: this.apiKey, webhookSecret: 'whsec_fake_secret', apiUrl: this.url };
  }

  /** The next `times` calls to `path` (e.g. "/v1/billing/meter_events") answer `status`. */
  fail(path: string, status: number, times = 1): void {
    this.injected.push({ path, status, times });
  }

  /** A subscription of `customer` to the given price ids, as Stripe would return it. */
  putSubscription(id: string, customer: string, priceIds: string[], status = 'active', metadata: Obj = {}): Obj {
    const sub = {
      id,
      object: 'subscription',
      customer,
      status,
      metadata,
      cancel_at_period_end: false,
      items: list(
        priceIds.map((p, i) => ({ id: `si_${id}_${i}`, object: 'subscription_item', price: this.prices.get(p) })),
        `/v1/subscription_items?subscription=${id}`,
      ),
    };
    this.subscriptions.set(id, sub);
    return sub;
  }

  /** What Rhone changes on a subscription: its items (swapped, prorated) and cancel_at_period_end. */
  private updateSubscription(id: string, body: Obj): Obj {
    const sub = this.get(this.subscriptions, id, 'subscription') as Obj & { items: { data: Obj[] } };
    if (body.cancel_at_period_end !== undefined) sub.cancel_at_period_end = body.cancel_at_period_end === 'true';
    if (body.proration_behavior !== undefined) sub.last_proration_behavior = body.proration_behavior;
    const changes = (body.items ?? []) as Obj[];
    for (const change of changes) {
      if (change.deleted === 'true') {
        if (!sub.items.data.some((i) => i.id === change.id))
          throw new StripeFail(400, 'invalid_request_error', `No such subscription item: '${String(change.id)}'`);
        sub.items.data = sub.items.data.filter((i) => i.id !== change.id);
      } else if (change.price) {
        const price = this.prices.get(String(change.price));
        if (!price) throw new StripeFail(400, 'invalid_request_error', `No such price: '${String(change.price)}'`);
        if ((price.recurring as Obj | undefined)?.usage_type === 'metered' && change.quantity !== undefined) {
          throw new StripeFail(400, 'invalid_request_error', 'Quantity should not be specified where usage_type is `metered`.');
        }
        sub.items.data.push({ id: this.id('si'), object: 'subscription_item', price });
      }
    }
    return sub;
  }

  private id(prefix: string): string {
    this.seq += 1;
    return `${prefix}_fake${String(this.seq).padStart(6, '0')}`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', 'http://fake');
    const body = req.method === 'GET' ? parseForm(url.search.slice(1)) : parseForm(Buffer.concat(chunks).toString('utf8'));
    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', 'request-id': this.id('req'), ...headers });
      res.end(JSON.stringify(payload));
    };
    try {
      if (req.headers.authorization !== `Bearer ${this.apiKey}`) {
        this.stats.unauthorized += 1;
        throw new StripeFail(401, 'invalid_request_error', 'Invalid API Key provided.');
      }
      const injected = this.injected.find((f) => f.path === url.pathname && f.times > 0);
      if (injected) {
        injected.times -= 1;
        throw new StripeFail(
          injected.status,
          injected.status === 429 ? 'invalid_request_error' : 'api_error',
          `Injected ${injected.status}.`,
          injected.status === 429 ? 'rate_limit' : undefined,
        );
      }
      const key = req.method === 'POST' ? req.headers['idempotency-key'] : undefined;
      const replay = typeof key === 'string' ? this.idempotent.get(`${url.pathname}\n${key}`) : undefined;
      if (replay) return send(replay.status, replay.body, { 'idempotent-replayed': 'true' });
      const result = await this.route(req.method ?? 'GET', url.pathname, body);
      if (typeof key === 'string') this.idempotent.set(`${url.pathname}\n${key}`, { status: 200, body: result });
      send(200, result);
    } catch (err) {
      if (!(err instanceof StripeFail)) {
        send(500, { error: { type: 'api_error', message: (err as Error).message } });
        return;
      }
      if (err.status === 429) this.stats.rateLimited += 1;
      const headers: Record<string, string> = err.shouldRetry === undefined ? {} : { 'stripe-should-retry': String(err.shouldRetry) };
      send(err.status, { error: { type: err.type, message: err.message, ...(err.code ? { code: err.code } : {}) } }, headers);
    }
  }

  private async route(method: string, path: string, body: Obj): Promise<unknown> {
    const match = (m: string, re: RegExp) => (method === m ? re.exec(path) : null);
    let m: RegExpExecArray | null;
    if (match('POST', /^\/v1\/customers$/))
      return this.create(this.customers, 'cus', { object: 'customer', email: body.email ?? null, name: body.name ?? null, metadata: body.metadata ?? {} });
    if ((m = match('GET', /^\/v1\/customers\/([^/]+)$/))) return this.get(this.customers, m[1], 'customer');
    if (match('POST', /^\/v1\/products$/)) {
      if (typeof body.id === 'string' && this.products.has(body.id))
        throw new StripeFail(400, 'invalid_request_error', 'Product already exists.', 'resource_already_exists');
      return this.create(
        this.products,
        'prod',
        { object: 'product', name: body.name, active: true, metadata: body.metadata ?? {} },
        body.id as string | undefined,
      );
    }
    if ((m = match('GET', /^\/v1\/products\/([^/]+)$/))) return this.get(this.products, m[1], 'product');
    if (match('GET', /^\/v1\/prices$/)) {
      const keys = (body.lookup_keys as string[] | undefined) ?? null;
      const data = [...this.prices.values()].filter(
        (p) => (!keys || keys.includes(p.lookup_key as string)) && (body.active === undefined || String(p.active) === body.active),
      );
      return list(data, '/v1/prices');
    }
    if (match('POST', /^\/v1\/prices$/)) return this.createPrice(body);
    if (match('GET', /^\/v1\/billing\/meters$/)) return list([...this.meters.values()], '/v1/billing/meters');
    if (match('POST', /^\/v1\/billing\/meters$/)) {
      if ([...this.meters.values()].some((x) => x.event_name === body.event_name))
        throw new StripeFail(400, 'invalid_request_error', `A meter with event_name ${String(body.event_name)} already exists.`);
      return this.create(this.meters, 'mtr', { object: 'billing.meter', status: 'active', ...body });
    }
    if ((m = match('POST', /^\/v1\/billing\/meters\/([^/]+)\/reactivate$/)))
      return Object.assign(this.get(this.meters, m[1], 'billing.meter'), { status: 'active' });
    if (match('POST', /^\/v1\/billing\/meter_events$/)) return this.meterEvent(body);
    if (match('POST', /^\/v1\/checkout\/sessions$/)) return this.checkout(body);
    if (match('POST', /^\/v1\/billing_portal\/sessions$/)) {
      this.get(this.customers, body.customer as string, 'customer');
      const session = {
        id: this.id('bps'),
        object: 'billing_portal.session',
        customer: body.customer,
        return_url: body.return_url,
        url: `https://billing.stripe.test/p/session/${this.seq}`,
      };
      this.portalSessions.push(session);
      return session;
    }
    if ((m = match('GET', /^\/v1\/subscriptions\/([^/]+)$/))) return this.get(this.subscriptions, m[1], 'subscription');
    if ((m = match('POST', /^\/v1\/subscriptions\/([^/]+)$/))) return this.updateSubscription(m[1], body);
    throw new StripeFail(404, 'invalid_request_error', `Unrecognized request URL (${method}: ${path}).`);
  }

  private create(store: Map<string, Obj>, prefix: string, fields: Obj, id = this.id(prefix)): Obj {
    const obj = { id, created: Math.floor(Date.now() / 1000), livemode: false, ...fields };
    store.set(id, obj);
    return obj;
  }

  private get(store: Map<string, Obj>, id: string, what: string): Obj {
    const obj = store.get(id);
    if (!obj) throw new StripeFail(404, 'invalid_request_error', `No such ${what}: '${id}'`, 'resource_missing');
    return obj;
  }

  private createPrice(body: Obj): Obj {
    this.get(this.products, body.product as string, 'product');
    const lookup = body.lookup_key as string | undefined;
    const holder = lookup ? [...this.prices.values()].find((p) => p.lookup_key === lookup) : undefined;
    if (holder && body.transfer_lookup_key !== 'true')
      throw new StripeFail(400, 'invalid_request_error', `A price (\`${String(holder.id)}\`) already uses that lookup key.`);
    if (holder) holder.lookup_key = null;
    const recurring = body.recurring as Obj | undefined;
    if (recurring?.usage_type === 'metered' && !this.meters.has(recurring.meter as string))
      throw new StripeFail(400, 'invalid_request_error', 'Metered prices need a meter.');
    const { transfer_lookup_key: _t, ...fields } = body;
    return this.create(this.prices, 'price', { object: 'price', active: true, lookup_key: lookup ?? null, metadata: {}, ...fields });
  }

  private checkout(body: Obj): Obj {
    this.get(this.customers, body.customer as string, 'customer');
    for (const item of (body.line_items as Obj[] | undefined) ?? []) {
      const price = this.get(this.prices, item.price as string, 'price');
      const metered = (price.recurring as Obj | undefined)?.usage_type === 'metered';
      if (metered && item.quantity !== undefined)
        throw new StripeFail(400, 'invalid_request_error', 'Quantity should not be specified where usage_type is `metered`.');
    }
    const session = { id: this.id('cs'), object: 'checkout.session', url: `https://checkout.stripe.test/c/pay/${this.seq}`, ...body };
    this.checkoutSessions.push(session);
    return session;
  }

  private async meterEvent(body: Obj): Promise<Obj> {
    this.stats.meterEventCalls += 1;
    const payload = (body.payload ?? {}) as Obj;
    const customer = payload.stripe_customer_id as string | undefined;
    const value = Number(payload.value);
    if (!body.event_name || !customer || !Number.isInteger(value))
      throw new StripeFail(400, 'invalid_request_error', 'event_name, payload[stripe_customer_id] and an integer payload[value] are required.');
    const timestamp = Number(body.timestamp ?? Math.floor(Date.now() / 1000));
    const now = Date.now() / 1000;
    if (timestamp < now - 35 * 86400 || timestamp > now + 300)
      throw new StripeFail(400, 'invalid_request_error', 'timestamp must be within the past 35 days and at most 5 minutes in the future.');
    // Stripe allows one concurrent call per customer and meter.
    const lane = `${customer}\n${String(body.event_name)}`;
    if (this.inFlight.has(lane)) throw new StripeFail(429, 'invalid_request_error', 'Too many concurrent requests for this customer and meter.', 'rate_limit');
    this.inFlight.add(lane);
    this.stats.maxInFlight = Math.max(this.stats.maxInFlight, this.inFlight.size);
    try {
      if (this.meterEventLatencyMs > 0) await sleep(this.meterEventLatencyMs);
      const identifier = (body.identifier as string | undefined) ?? this.id('mev');
      if (this.meterEvents.has(identifier)) {
        this.stats.duplicateIdentifiers += 1;
        throw new StripeFail(400, 'invalid_request_error', `An event already exists with identifier ${identifier}.`, undefined, false);
      }
      this.meterEvents.set(identifier, { eventName: body.event_name as string, customer, value, identifier, timestamp });
      return { object: 'billing.meter_event', created: Math.floor(now), event_name: body.event_name, identifier, livemode: false, payload, timestamp };
    } finally {
      this.inFlight.delete(lane);
    }
  }
}
