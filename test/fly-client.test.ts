// The Fly client's own behaviour against a scripted server: auth header, retries and their
// waits, what it refuses to retry, create lookups by launch id, wait loops, and rate limits.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlyClient, authorizationHeader, retryAfterMs } from '../backend/providers/fly/client.ts';
import { FlyApiError, FlyNetworkError } from '../backend/providers/fly/errors.ts';
import { RateLimiter } from '../backend/providers/fly/rate-limit.ts';

type Reply = { status: number; body?: unknown; headers?: Record<string, string> } | 'drop';
interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

async function scripted(handler: (req: Seen, n: number) => Reply) {
  const seen: Seen[] = [];
  const server = http.createServer(async (req, res) => {
    let body = '';
    for await (const c of req) body += c;
    const s = { method: req.method!, url: req.url!, headers: req.headers, body };
    seen.push(s);
    const reply = handler(s, seen.length);
    if (reply === 'drop') return req.socket.destroy();
    res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
    res.end(reply.body === undefined ? '' : JSON.stringify(reply.body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** A client whose sleeps pass instantly on a fake clock, and are recorded. */
function client(url: string, waits: number[] = [], token = 'tok') {
  let now = 0;
  return new FlyClient({
    baseUrl: url,
    token,
    retries: 4,
    backoff: { baseMs: 100, capMs: 1000 },
    sleep: async (ms) => {
      waits.push(ms);
      now += ms;
    },
    now: () => now,
  });
}

const machine = (id: string, launchId?: string) => ({
  id,
  name: id,
  state: 'created',
  region: 'iad',
  version: 'v1',
  instance_id: 'v1',
  created_at: '',
  updated_at: '',
  config: { image: 'img', metadata: launchId ? { rhone_launch_id: launchId } : {} },
});

describe('Fly client', () => {
  it('sends tokens that carry a scheme as issued and bare ones as Bearer', async () => {
    assert.equal(authorizationHeader('FlyV1 fm2_abc,fm2_def'), 'FlyV1 fm2_abc,fm2_def');
    assert.equal(authorizationHeader('fo1_plain'), 'Bearer fo1_plain');
    const fake = await scripted(() => ({ status: 200, body: { id: 'a', name: 'a' } }));
    try {
      await client(fake.url, [], 'FlyV1 fm2_x').getApp('a');
      await client(fake.url, [], 'plain').getApp('a');
      assert.deepEqual(
        fake.seen.map((s) => s.headers.authorization),
        ['FlyV1 fm2_x', 'Bearer plain'],
      );
    } finally {
      await fake.close();
    }
  });

  it('honours Retry-After on 429, backs off with jitter without it, and retries 503 and dropped connections', async () => {
    const fake = await scripted((_s, n) =>
      n === 1
        ? { status: 429, headers: { 'retry-after': '2' }, body: { error: 'rate limited' } }
        : n === 2
          ? { status: 429, body: { error: 'rate limited' } }
          : n === 3
            ? { status: 503, body: { error: 'unavailable' } }
            : n === 4
              ? 'drop'
              : { status: 200, body: { id: 'a', name: 'a' } },
    );
    const waits: number[] = [];
    try {
      const app = await client(fake.url, waits).getApp('a');
      assert.equal(app?.name, 'a');
      assert.equal(fake.seen.length, 5);
      assert.equal(waits[0], 2000, 'Retry-After: 2 means two seconds');
      // Attempt n waits a random time in [ceiling/2, ceiling], ceiling = base * 2^(n-1).
      assert.ok(waits[1] >= 100 && waits[1] <= 200, `second attempt's backoff in [100, 200], got ${waits[1]}`);
      assert.ok(waits[2] >= 200 && waits[2] <= 400, `third attempt's backoff in [200, 400], got ${waits[2]}`);
    } finally {
      await fake.close();
    }
  });

  it('does not retry a 4xx that is not transient, and says what Fly said', async () => {
    const fake = await scripted(() => ({ status: 422, body: { error: 'name taken', status: 'name_taken' } }));
    try {
      await assert.rejects(client(fake.url).createApp({ name: 'x', org_slug: 'o' }), (err: FlyApiError) => {
        assert.equal(err.status, 422);
        assert.equal(err.code, 'name_taken');
        assert.match(err.message, /name taken/);
        return true;
      });
      assert.equal(fake.seen.length, 1);
    } finally {
      await fake.close();
    }
  });

  it('gives up after its retries with the last error', async () => {
    const fake = await scripted(() => ({ status: 503, body: { error: 'down' } }));
    try {
      await assert.rejects(client(fake.url).getApp('a'), (err: FlyApiError) => err.status === 503);
      assert.equal(fake.seen.length, 5);
    } finally {
      await fake.close();
    }
  });

  it('after a 408 on create, finds the machine by its launch id instead of creating a twin', async () => {
    const fake = await scripted((s) => {
      if (s.method === 'POST') return { status: 408, body: { error: 'timeout' } };
      return { status: 200, body: [machine('m1', 'dep:0')] };
    });
    try {
      const m = await client(fake.url).createMachine('app', { config: { image: 'img', metadata: { rhone_launch_id: 'dep:0' } } });
      assert.equal(m.id, 'm1');
      assert.equal(fake.seen.filter((s) => s.method === 'POST').length, 1, 'created once');
      const lookup = new URL(fake.seen[1].url, 'http://x');
      assert.equal(lookup.searchParams.get('metadata.rhone_launch_id'), 'dep:0');
    } finally {
      await fake.close();
    }
  });

  it('after a dropped create with nothing found, creates again; without a launch id it refuses to guess', async () => {
    let posts = 0;
    const fake = await scripted((s) => {
      if (s.method === 'POST') return ++posts === 1 ? 'drop' : { status: 200, body: machine('m2', 'dep:1') };
      return { status: 200, body: [] };
    });
    try {
      const m = await client(fake.url).createMachine('app', { config: { image: 'img', metadata: { rhone_launch_id: 'dep:1' } } });
      assert.equal(m.id, 'm2');
      assert.equal(posts, 2);
      posts = 0;
      await assert.rejects(client(fake.url).createMachine('app', { config: { image: 'img' } }), FlyNetworkError);
      assert.equal(posts, 1);
    } finally {
      await fake.close();
    }
  });

  it('keeps waiting past 408s until the state, and gives up at its own deadline', async () => {
    let waits = 0;
    const fake = await scripted((s) => {
      const u = new URL(s.url, 'http://x');
      assert.ok(Number(u.searchParams.get('timeout')) <= 60);
      return ++waits < 3 ? { status: 408, body: { error: 'timeout' } } : { status: 200, body: { ok: true, state: 'started' } };
    });
    try {
      const res = await client(fake.url).waitForState('app', 'm1', 'started', { timeoutMs: 5000 });
      assert.equal(res.state, 'started');
      assert.equal(waits, 3);
      await assert.rejects(client(fake.url).waitForState('app', 'm1', 'started', { timeoutMs: 0 }), (err: FlyApiError) => err.status === 408);
    } finally {
      await fake.close();
    }
  });

  it('follows fly-next-cursor through every page of a list', async () => {
    const fake = await scripted((s) => {
      const cursor = new URL(s.url, 'http://x').searchParams.get('cursor');
      if (!cursor) return { status: 200, body: [machine('a')], headers: { 'fly-next-cursor': 'p2' } };
      return { status: 200, body: [machine('b')] };
    });
    try {
      const all = await client(fake.url).listMachines('app', { metadata: { rhone_app: 'x' } });
      assert.deepEqual(
        all.map((m) => m.id),
        ['a', 'b'],
      );
    } finally {
      await fake.close();
    }
  });

  it('parses Retry-After as seconds or a date', () => {
    assert.equal(retryAfterMs('3'), 3000);
    assert.equal(retryAfterMs(new Date(10_000).toUTCString(), 4000), 6000);
    assert.equal(retryAfterMs('soon'), null);
    assert.equal(retryAfterMs(null), null);
  });
});

describe('Fly rate limiter', () => {
  it('allows a burst of 3 per action and machine, then 1 per second; other machines are not held up', async () => {
    let now = 0;
    const slept: number[] = [];
    const limiter = new RateLimiter(
      async (ms) => {
        slept.push(ms);
        now += ms;
      },
      () => now,
    );
    const spec = { perSecond: 1, burst: 3 };
    for (let i = 0; i < 3; i++) await limiter.take('stop', 'm1', spec);
    assert.deepEqual(slept, []);
    await limiter.take('stop', 'm2', spec);
    await limiter.take('start', 'm1', spec);
    assert.deepEqual(slept, [], 'different machine or action: own bucket');
    await limiter.take('stop', 'm1', spec);
    assert.deepEqual(slept, [1000]);
  });

  it('gives machine gets 5 per second with a burst of 10', async () => {
    let now = 0;
    const slept: number[] = [];
    const limiter = new RateLimiter(
      async (ms) => {
        slept.push(ms);
        now += ms;
      },
      () => now,
    );
    for (let i = 0; i < 11; i++) await limiter.take('get', 'm1', { perSecond: 5, burst: 10 });
    assert.deepEqual(slept, [200]);
  });
});
