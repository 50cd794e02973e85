// A fake of the parts of Fly's Machines API that metering reads: the org machine listing (paged by
// cursor, oldest update first, include_deleted), machine events, and the local runtime's bandwidth
// counter. It can enforce Fly's published rate limits (1 req/s, burst 3, per action and org or
// machine; 429 beyond), add latency, and fail a request on demand. Tests and bench/poll-usage.ts
// use it. It also plays Fly's apps, IP assignments, machine creation and registry (fake-fly-apps.ts)
// as strictly as Fly: nothing can be pushed to or run in an app that does not exist.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MachineEvent } from '../../backend/providers/fly/types.ts';
import { createFakeApps, type FakeApps } from './fake-fly-apps.ts';

export interface FakeMachine {
  id: string;
  app_name: string;
  region: string;
  state: string;
  config: { guest?: { cpu_kind?: 'shared' | 'performance'; cpus?: number; memory_mb?: number }; metadata?: Record<string, string> };
  created_at: string;
  updated_at: string;
  /** Oldest first. */
  events: MachineEvent[];
}

export interface FakeFlyOptions {
  latencyMs?: number;
  /** Enforce Fly's default limit (1/s, burst 3) per action and id; answer 429 beyond it. */
  rateLimit?: boolean;
}

export interface FakeFlyMachines {
  url: string;
  /** Apps, IPs, pushed images, and the order things happened in. */
  fly: FakeApps;
  machines: Map<string, FakeMachine>;
  bytesOut: Map<string, number>;
  requests: { orgPages: number; events: number; bandwidth: number; rejected429: number };
  /** The next request whose path and query match answers 500 once. */
  failOnce(pattern: RegExp): void;
  /** Adds a machine whose history is `events` ([ms, type, status], oldest first); its state and updated_at follow the last. */
  add(m: { id: string; app: string; rhoneApp?: string; region?: string; events: [number, string, string][] }): FakeMachine;
  /** Appends an event to a machine (its state and updated_at follow). */
  event(id: string, at: number, type: string, status: string): void;
  close(): Promise<void>;
}

const EVENTS_KEPT = 50;

class Bucket {
  tokens = 3;
  updated = Date.now();
  take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(3, this.tokens + (now - this.updated) / 1000);
    this.updated = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export async function startFakeFlyMachines(options: FakeFlyOptions = {}): Promise<FakeFlyMachines> {
  const machines = new Map<string, FakeMachine>();
  const bytesOut = new Map<string, number>();
  const requests = { orgPages: 0, events: 0, bandwidth: 0, rejected429: 0 };
  const buckets = new Map<string, Bucket>();
  const failures: RegExp[] = [];
  let sorted: FakeMachine[] | null = null;

  const allowed = (key: string) => {
    if (!options.rateLimit) return true;
    let b = buckets.get(key);
    if (!b) buckets.set(key, (b = new Bucket()));
    return b.take();
  };

  const send = (res: http.ServerResponse, status: number, body: unknown) => {
    const answer = () => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (options.latencyMs) setTimeout(answer, options.latencyMs);
    else answer();
  };

  const fly = createFakeApps();
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const failure = failures.findIndex((f) => f.test(url.pathname + url.search));
    if (failure >= 0) {
      failures.splice(failure, 1);
      return send(res, 500, { error: 'injected failure' });
    }
    let m = /^\/v1\/orgs\/([^/]+)\/machines$/.exec(url.pathname);
    if (m) {
      if (!allowed(`orgs.machines:${m[1]}`)) {
        requests.rejected429++;
        return send(res, 429, { error: 'rate limited' });
      }
      requests.orgPages++;
      const includeDeleted = url.searchParams.get('include_deleted') === 'true';
      const limit = Math.min(1000, Number(url.searchParams.get('limit') ?? 1000));
      sorted ??= [...machines.values()].sort((a, b) => a.updated_at.localeCompare(b.updated_at) || a.id.localeCompare(b.id));
      const list = includeDeleted ? sorted : sorted.filter((x) => x.state !== 'destroyed');
      const start = Number(url.searchParams.get('cursor') ?? 0);
      const page = list.slice(start, start + limit);
      const next = start + limit < list.length ? String(start + limit) : undefined;
      return send(res, 200, {
        machines: page.map(({ events: _events, ...rest }) => rest),
        ...(next ? { next_cursor: next } : {}),
        ...(page.length ? { last_updated_at: page[page.length - 1].updated_at, last_machine_id: page[page.length - 1].id } : {}),
      });
    }
    m = /^\/v1\/apps\/([^/]+)\/machines\/([^/]+)\/events$/.exec(url.pathname);
    if (m) {
      if (!allowed(`machines.events:${m[2]}`)) {
        requests.rejected429++;
        return send(res, 429, { error: 'rate limited' });
      }
      requests.events++;
      const machine = machines.get(m[2]);
      if (!machine || machine.app_name !== m[1]) return send(res, 404, { error: 'machine not found' });
      const limit = Math.min(EVENTS_KEPT, Number(url.searchParams.get('limit') ?? 20));
      return send(res, 200, [...machine.events].reverse().slice(0, limit));
    }
    m = /^\/v1\/apps\/([^/]+)\/local\/bandwidth$/.exec(url.pathname);
    if (m) {
      requests.bandwidth++;
      return send(res, 200, { bytes_out: bytesOut.get(m[1]) ?? 0 });
    }
    const answer = fly.handle(req.method ?? 'GET', url, raw, req.headers);
    if (answer) return send(res, answer.status, answer.body);
    send(res, 404, { error: `no route ${url.pathname}` });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const follow = (machine: FakeMachine) => {
    const last = machine.events[machine.events.length - 1];
    machine.state = last.status;
    machine.updated_at = new Date(last.timestamp).toISOString();
    sorted = null;
  };

  return {
    url: `http://127.0.0.1:${port}`,
    fly,
    machines,
    bytesOut,
    requests,
    failOnce: (pattern) => void failures.push(pattern),
    add({ id, app, rhoneApp, region = 'iad', events }) {
      const machine: FakeMachine = {
        id,
        app_name: app,
        region,
        state: 'created',
        config: { guest: { cpu_kind: 'shared', cpus: 1, memory_mb: 256 }, metadata: rhoneApp ? { rhone_app: rhoneApp } : {} },
        created_at: new Date(events[0][0]).toISOString(),
        updated_at: new Date(events[0][0]).toISOString(),
        events: events.map(([timestamp, type, status]) => ({ type, status, source: 'flyd', timestamp })),
      };
      machines.set(id, machine);
      follow(machine);
      return machine;
    },
    event(id, at, type, status) {
      const machine = machines.get(id)!;
      machine.events.push({ type, status, source: 'flyd', timestamp: at });
      follow(machine);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
