// Live progress of a deployment: events stored with gapless per-deployment seqs, streamed over SSE
// by any api process (two here) from appends made elsewhere (a "worker": appendEvents called
// directly), resumable with Last-Event-ID, redacted, and paged as JSON.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import Koa from 'koa';
import type { Redis } from 'ioredis';
import { db } from '../backend/db.ts';
import { redis } from '../backend/redis.ts';
import { errorHandler } from '../backend/middleware/errors.ts';
import { appendEvents, createLogSink, eventsChannel, type NewEvent, type StoredEvent } from '../backend/deployments/events.ts';
import { closeEventStreams, deploymentEventRoutes, type EventStreamOptions } from '../backend/routes/deployments/events.ts';
import type { Actor } from '../backend/middleware/auth.ts';
import { Team, type User } from '../backend/models/index.ts';
import { addMember, makeApp, makeUser } from './factories.ts';
import { Client, signedIn, startTestServer, type TestServer } from './http.ts';
import { dumpDatabase } from './db-state.ts';
import { SseClient } from './support/sse.ts';
import { until } from './local-helpers.ts';

const logEvent = (line: string, stage = 'build'): NewEvent => ({ type: 'log', data: { stage, stream: 'stdout', line, at: new Date().toISOString() } });
const statusEvent = (status: string, stage: string | null = null, reason?: string): NewEvent => ({
  type: 'status',
  data: reason ? { status, stage, reason } : { status, stage },
});
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const cookieOf = (c: Client) => [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ');

/** How many connections (api processes) subscribe to the deployment's channel. */
async function subscribers(id: string): Promise<number> {
  const reply = (await redis().call('PUBSUB', 'NUMSUB', eventsChannel(id))) as [string, number];
  return Number(reply[1]);
}

async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A deployment row as the lead's pipeline would have created it, straight into the table. */
async function makeDeployment(appId: string, number = 1): Promise<string> {
  const [row] = await db()('deployments').insert({ appId, number, trigger: 'manual', configSnapshot: '{}' }).returning('id');
  return (row as { id: string }).id;
}

/** Moves the row and appends the status event in one transaction, as the pipeline does. */
async function setStatus(id: string, status: string, stage: string | null = null): Promise<void> {
  await db().transaction(async (trx) => {
    await trx('deployments').where({ id }).update({ status, stage });
    await appendEvents(trx, id, [statusEvent(status, stage)]);
  });
}

describe('deployment events', () => {
  let a: TestServer;
  let b: TestServer;
  let owner: Client;
  let ada: User;
  let deploymentId: string;

  before(async () => {
    a = await startTestServer();
    b = await startTestServer();
  });
  after(async () => {
    await a.close();
    await b.close();
  });
  beforeEach(async () => {
    owner = await signedIn(a.url, 'ada');
    ada = await makeUser('ada');
    const team = await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound();
    const app = await makeApp(ada, team, 'web');
    deploymentId = await makeDeployment(app.id);
  });

  const eventsUrl = (server: TestServer, id = deploymentId) => `${server.url}/api/deployments/${id}/events`;
  const open = (server: TestServer, options: { lastEventId?: string; as?: Client; query?: string } = {}) =>
    SseClient.connect(eventsUrl(server) + (options.query ?? ''), { headers: { cookie: cookieOf(options.as ?? owner) }, lastEventId: options.lastEventId });

  it("streams a worker's events to clients on both api processes, in order, with ids and types", async () => {
    await appendEvents(db(), deploymentId, [statusEvent('queued')]);
    const onB = await open(b);
    const onA = await open(a);
    assert.equal(onB.status, 200);
    assert.match(onB.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(onB.headers.get('cache-control'), 'no-cache');
    assert.equal(onB.headers.get('x-accel-buffering'), 'no');

    await appendEvents(db(), deploymentId, [statusEvent('cloning', 'clone')]);
    await appendEvents(db(), deploymentId, [logEvent('Cloning into /work…', 'clone'), logEvent('done', 'clone')]);
    await appendEvents(db(), deploymentId, [statusEvent('failed', 'clone', 'the repository is gone')]);

    for (const client of [onB, onA]) {
      await client.closed;
      assert.deepEqual(
        client.messages.map((m) => [m.id, m.event]),
        [
          ['1', 'status'],
          ['2', 'status'],
          ['3', 'log'],
          ['4', 'log'],
          ['5', 'status'],
          [undefined, 'end'],
        ],
      );
      assert.deepEqual(JSON.parse(client.messages[1].data), { status: 'cloning', stage: 'clone' });
      const line = JSON.parse(client.messages[2].data);
      assert.deepEqual({ ...line, at: typeof line.at }, { stage: 'clone', stream: 'stdout', line: 'Cloning into /work…', at: 'string' });
      assert.deepEqual(JSON.parse(client.messages[4].data), { status: 'failed', stage: 'clone', reason: 'the repository is gone' });
    }
  });

  it('resumes from Last-Event-ID (or ?lastEventId=) with no gap and no duplicate', async () => {
    await appendEvents(db(), deploymentId, [statusEvent('building', 'build'), logEvent('l2'), logEvent('l3')]);
    const first = await open(b);
    await first.waitForEvents(3);
    first.close();
    assert.equal(first.lastId(), '3');

    // Appended while nobody listens: the reconnect must pick them up from the database.
    for (const n of range(4, 8)) await appendEvents(db(), deploymentId, [logEvent(`l${n}`)]);
    const resumed = await open(a, { lastEventId: '3' });
    await resumed.waitForEvents(5);
    await appendEvents(db(), deploymentId, [logEvent('l9'), logEvent('l10')]);
    await resumed.waitForEvents(7);
    await sleep(100);
    assert.deepEqual(
      resumed.events.map((e) => e.seq),
      range(4, 10),
    );
    assert.deepEqual(
      resumed.events.map((e) => JSON.parse(e.data).line),
      range(4, 10).map((n) => `l${n}`),
    );
    resumed.close();

    const polyfill = await open(b, { query: '?lastEventId=8' });
    await polyfill.waitForEvents(2);
    await sleep(100);
    assert.deepEqual(
      polyfill.events.map((e) => e.seq),
      [9, 10],
    );
    polyfill.close();
  });

  it('a client reconnecting over and over while events pour in receives every seq exactly once', async () => {
    let writing = true;
    const writer = (async () => {
      for (let i = 0; i < 60; i++) {
        await appendEvents(
          db(),
          deploymentId,
          range(1, 1 + (i % 4)).map((j) => logEvent(`w${i}.${j}`)),
        );
        await sleep(i % 3);
      }
      writing = false;
    })();
    const received: number[] = [];
    let last: string | undefined;
    for (let round = 0; writing; round++) {
      const client = await open(round % 2 ? a : b, { lastEventId: last });
      await sleep(5 + (round % 4) * 7);
      client.close();
      received.push(...client.events.map((e) => e.seq));
      last = client.lastId() ?? last;
    }
    await writer;
    await setStatus(deploymentId, 'live', 'deploy');
    const final = await open(a, { lastEventId: last });
    await final.closed;
    received.push(...final.events.map((e) => e.seq));
    const total = (60 / 4) * (1 + 2 + 3 + 4) + 1;
    assert.deepEqual(received, range(1, total));
    assert.equal(final.messages.at(-1)?.event, 'end');
  });

  it('three concurrent appenders get gapless, unique seqs, and a live client sees them all in order', async () => {
    const client = await open(b);
    const results: StoredEvent[][] = [];
    await Promise.all(
      range(1, 3).map(async (loop) => {
        for (let i = 0; i < 30; i++) {
          results.push(
            await appendEvents(
              db(),
              deploymentId,
              range(1, 1 + ((i + loop) % 4)).map((j) => logEvent(`a${loop}.${i}.${j}`)),
            ),
          );
        }
      }),
    );
    const total = results.reduce((n, r) => n + r.length, 0);
    for (const batch of results)
      assert.deepEqual(
        batch.map((e) => e.seq),
        range(batch[0].seq, batch[0].seq + batch.length - 1),
        'a batch gets consecutive seqs',
      );
    assert.deepEqual(
      results
        .flat()
        .map((e) => e.seq)
        .sort((x, y) => x - y),
      range(1, total),
    );
    const stored = await db()('deployment_events').where({ deploymentId }).orderBy('seq').pluck('seq');
    assert.deepEqual(stored, range(1, total));
    const row = await db()('deployments').where({ id: deploymentId }).first('lastSeq');
    assert.equal(row.lastSeq, total);

    await client.waitForEvents(total);
    await sleep(100);
    assert.deepEqual(
      client.events.map((e) => e.seq),
      range(1, total),
    );
    client.close();
  });

  it('fills from the database a batch whose publish was overtaken or lost, without duplicating it', async () => {
    const client = await open(b);
    // A writer whose publish is slow: the next writer's batch reaches Redis first.
    const late: Promise<number>[] = [];
    const slow = {
      publish: (channel: string, message: string) => {
        const published = sleep(150).then(() => redis().publish(channel, message));
        late.push(published);
        return published;
      },
    } as unknown as Redis;
    // A writer that dies between commit and publish.
    const lost = { publish: async () => 0 } as unknown as Redis;
    // In a transaction, the publish waits for the commit, so these return with the publish still to come.
    await db().transaction((trx) => appendEvents(trx, deploymentId, [logEvent('slow 1'), logEvent('slow 2')], { publisher: slow }));
    await db().transaction((trx) => appendEvents(trx, deploymentId, [logEvent('slow 3')], { publisher: slow }));
    await appendEvents(db(), deploymentId, [logEvent('lost 4')], { publisher: lost });
    // A rolled-back append is neither published nor leaves a hole in the seqs.
    await assert.rejects(
      db().transaction(async (trx) => {
        await appendEvents(trx, deploymentId, [logEvent('rolled back')]);
        throw new Error('changed my mind');
      }),
      /changed my mind/,
    );
    await appendEvents(db(), deploymentId, [logEvent('fast 5')]);
    await client.waitForEvents(5);
    // The slow publishes arrive now, late: they must not be sent again. One more batch, published
    // after them on the same connection, reaches the stream after them (Redis keeps the order).
    assert.equal(late.length, 2);
    await Promise.all(late);
    await appendEvents(db(), deploymentId, [logEvent('after 6')]);
    await client.waitForEvents(6);
    assert.deepEqual(
      client.events.map((e) => [e.seq, JSON.parse(e.data).line]),
      [
        [1, 'slow 1'],
        [2, 'slow 2'],
        [3, 'slow 3'],
        [4, 'lost 4'],
        [5, 'fast 5'],
        [6, 'after 6'],
      ],
    );
    client.close();
  });

  it('ends after the terminal status; a finished deployment replays at once and ends', async () => {
    await setStatus(deploymentId, 'deploying', 'deploy');
    const client = await open(b);
    await appendEvents(db(), deploymentId, [logEvent('machine started', 'deploy')]);
    await setStatus(deploymentId, 'live', 'deploy');
    await client.closed;
    assert.deepEqual(
      client.messages.map((m) => m.event),
      ['status', 'log', 'status', 'end'],
    );
    assert.equal(JSON.parse(client.messages[2].data).status, 'live');

    // Later on it is replaced: a new client replays the whole story, then ends without waiting.
    await setStatus(deploymentId, 'replaced');
    const started = Date.now();
    const late = await open(a);
    await late.closed;
    assert.ok(Date.now() - started < 2000);
    assert.deepEqual(
      late.events.map((e) => e.seq),
      [1, 2, 3, 4],
    );
    assert.equal(late.messages.at(-1)?.event, 'end');

    // EventSource reconnects after a close; the resumed stream ends at once with nothing new.
    const again = await open(b, { lastEventId: '4' });
    await again.closed;
    assert.deepEqual(
      again.messages.map((m) => m.event),
      ['end'],
    );
  });

  /** The route mounted on its own (the actor set the way auth() would), to vary its settings and its Redis. */
  async function bareRoute(options: EventStreamOptions & { hubRedis?: Redis; actor?: Actor } = {}) {
    const { hubRedis = redis(), actor = { user: ada, via: 'session' }, ...settings } = options;
    const koa = new Koa();
    koa.use(errorHandler());
    koa.use(async (ctx, next) => {
      ctx.state.actor = actor;
      await next();
    });
    koa.use(deploymentEventRoutes({ knex: db(), redis: hubRedis }, settings).routes());
    const server: Server = await new Promise((resolve) => {
      const s = koa.listen(0, '127.0.0.1', () => resolve(s));
    });
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/deployments/${deploymentId}/events`,
      close: async () => {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      },
    };
  }

  it('sends a heartbeat comment at the configured interval and lets go of the channel on disconnect', async () => {
    const route = await bareRoute({ heartbeatMs: 50 });
    try {
      const client = await SseClient.connect(route.url);
      await client.waitFor((c) => c.comments.filter((x) => x === 'ping').length >= 3, 2000, 'three pings');
      assert.equal(client.retry, 2000);
      assert.equal(await subscribers(deploymentId), 1);
      client.close();
      await waitUntil(async () => (await subscribers(deploymentId)) === 0, 'the channel to be released');
    } finally {
      await route.close();
    }
  });

  it('misses nothing appended while its subscription is still being set up (subscribe first, then replay)', async () => {
    // A subscriber connection whose SUBSCRIBE takes 300 ms to go out: appends land in that window.
    const slow = redis().duplicate();
    const subscribe = slow.subscribe.bind(slow);
    Object.assign(slow, { subscribe: async (...channels: string[]) => (await sleep(300), subscribe(...channels)) });
    // An ordinary connection (the route counts streams on it) whose duplicates are the slow one.
    const conn = Object.assign(redis().duplicate(), { duplicate: () => slow });
    const route = await bareRoute({ hubRedis: conn });
    try {
      const connecting = SseClient.connect(route.url);
      await sleep(100);
      await appendEvents(db(), deploymentId, [logEvent('while subscribing')]);
      await setStatus(deploymentId, 'failed');
      const client = await connecting;
      await client.waitFor((c) => c.done, 3000, 'the end of the stream');
      assert.deepEqual(
        client.messages.map((m) => [m.id, m.event]),
        [
          ['1', 'log'],
          ['2', 'status'],
          [undefined, 'end'],
        ],
      );
    } finally {
      await route.close();
      slow.disconnect();
      conn.disconnect();
    }
  });

  it('drops a client that stops reading instead of buffering for it, and the client resumes from the database', async () => {
    const route = await bareRoute({ maxBufferedBytes: 64 * 1024 });
    try {
      const req = http.get(route.url, { agent: false });
      const [res] = (await once(req, 'response')) as [http.IncomingMessage];
      res.pause(); // a stuck client: the kernel buffers fill, then the server's
      const line = 'x'.repeat(4000);
      for (let i = 0; i < 40; i++)
        await appendEvents(
          db(),
          deploymentId,
          range(1, 100).map(() => logEvent(line)),
        );
      await waitUntil(async () => (await subscribers(deploymentId)) === 0, 'the slow client to be dropped', 10_000);
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      const closed = new Promise((resolve) => res.on('close', resolve));
      res.on('error', () => undefined); // "aborted": the server cut the response short, as intended
      res.resume();
      await closed;
      const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
      assert.ok(ids.length < 4000 && !text.includes('event: end'), `the stuck client got ${ids.length} events`);
      assert.deepEqual(ids, range(1, ids.length));
      const resumed = await SseClient.connect(route.url, { lastEventId: String(ids.length) });
      await resumed.waitForEvents(4000 - ids.length, 10_000);
      assert.deepEqual(
        resumed.events.map((e) => e.seq),
        range(ids.length + 1, 4000),
      );
      resumed.close();
    } finally {
      await route.close();
    }
  });

  it('shares one subscriber connection per api process among its clients, and releases it when they leave', async () => {
    const onB = await Promise.all(range(1, 5).map(() => open(b)));
    const onA = await open(a);
    // Five clients on b and one on a: two subscriptions, one per process.
    assert.equal(await subscribers(deploymentId), 2);
    await appendEvents(db(), deploymentId, [logEvent('to everyone')]);
    for (const client of [...onB, onA]) await client.waitForEvents(1);
    for (const client of onB.slice(0, 4)) client.close();
    await sleep(100);
    assert.equal(await subscribers(deploymentId), 2, 'b still has a client');
    onB[4].close();
    onA.close();
    await waitUntil(async () => (await subscribers(deploymentId)) === 0, 'both processes to unsubscribe');
    // A newcomer subscribes afresh and misses nothing.
    await appendEvents(db(), deploymentId, [logEvent('while nobody listened')]);
    const late = await open(b, { lastEventId: '1' });
    await appendEvents(db(), deploymentId, [logEvent('live again')]);
    await late.waitForEvents(2);
    assert.deepEqual(
      late.events.map((e) => e.seq),
      [2, 3],
    );
    late.close();
  });

  it('on shutdown, disconnects streams without the end event, and clients resume where they were', async () => {
    const client = await open(b);
    await appendEvents(db(), deploymentId, [logEvent('before shutdown')]);
    await client.waitForEvents(1);
    await closeEventStreams();
    await client.waitFor((c) => c.done, 2000, 'the disconnect');
    assert.deepEqual(
      client.messages.map((m) => m.event),
      ['log'],
      'no end event: EventSource must reconnect',
    );
    await appendEvents(db(), deploymentId, [logEvent('after shutdown')]);
    const resumed = await open(a, { lastEventId: client.lastId() });
    await appendEvents(db(), deploymentId, [logEvent('live elsewhere')]);
    await resumed.waitForEvents(2);
    assert.deepEqual(
      resumed.events.map((e) => JSON.parse(e.data).line),
      ['after shutdown', 'live elsewhere'],
    );
    resumed.close();
  });

  it('answers 401 to nobody, 404 to a non-member, 400 to a bad id, and streams to any member', async () => {
    const otto = await signedIn(a.url, 'otto');
    const mia = await makeUser('mia');
    await addMember(await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound(), mia, 'member');
    const member = await signedIn(a.url, 'mia');
    for (const path of ['events', 'logs']) {
      const url = `/api/deployments/${deploymentId}/${path}`;
      assert.equal((await new Client(a.url).get(url)).status, 401, path);
      const hidden = await otto.get(url);
      assert.equal(hidden.status, 404, path);
      assert.equal(hidden.body.error, 'not_found');
      assert.equal((await otto.get(`/api/deployments/00000000-0000-4000-8000-000000000000/${path}`)).status, 404);
      assert.equal((await owner.get(`/api/deployments/nope/${path}`)).status, 400);
    }
    const bad = await SseClient.connect(eventsUrl(a), { headers: { cookie: cookieOf(owner) }, lastEventId: 'abc' });
    assert.equal(bad.status, 400);
    const ok = await open(b, { as: member });
    assert.equal(ok.status, 200);
    ok.close();
  });

  it('redacts secrets before storing or streaming a line, caps long lines, and surfaces write failures on flush', async () => {
    const client = await open(b);
    const secrets = ['hunter2-password', 'abc'];
    const sink = createLogSink({ knex: db(), deploymentId, stage: 'deploy', secrets });
    sink.write('stdout', 'connecting with hunter2-password to the database');
    // Added after the sink was made, as the deploy stage does once it has decrypted the env.
    secrets.push('s3cr3t-token-42\nsecond-line-of-key');
    sink.write('stderr', 'token=s3cr3t-token-42; abc stays (too short to redact)');
    sink.write('stdout', 'key: second-line-of-key');
    sink.write('system', 'x'.repeat(20_000) + 'hunter2-password');
    await sink.close();
    sink.write('stdout', 'after close: ignored');

    const dump = await dumpDatabase();
    for (const secret of ['hunter2-password', 's3cr3t-token-42', 'second-line-of-key']) assert.ok(!dump.includes(secret), `${secret} reached the database`);
    await client.waitForEvents(4);
    const lines = client.events.map((e) => JSON.parse(e.data).line as string);
    assert.deepEqual(lines.slice(0, 3), ['connecting with [redacted] to the database', 'token=[redacted]; abc stays (too short to redact)', 'key: [redacted]']);
    assert.ok(Buffer.byteLength(lines[3]) <= 8192, 'a long line is cut at 8 KB');
    assert.match(lines[3], /^x+ … \[line cut at 8 KB\]$/);
    assert.deepEqual(
      client.events.map((e) => JSON.parse(e.data).stream),
      ['stdout', 'stderr', 'stdout', 'system'],
    );
    client.close();

    const orphan = createLogSink({ knex: db(), deploymentId: '00000000-0000-4000-8000-000000000000', stage: 'build', secrets: [] });
    assert.doesNotThrow(() => orphan.write('stdout', 'nowhere to go'));
    await assert.rejects(orphan.flush(), /not found/);
    await orphan.close(); // the failure was reported once
  });

  it('batches a burst of log lines in write order, and flushes a lone line by itself', async () => {
    const sink = createLogSink({ knex: db(), deploymentId, stage: 'build', secrets: [], flushMs: 50 });
    sink.write('stdout', 'lonely');
    const stored = () =>
      db()('deployment_events')
        .where({ deploymentId })
        .count<{ count: number }[]>('* as count')
        .then((r) => Number(r[0].count));
    await until('the lone line to be flushed by itself', async () => (await stored()) === 1);
    for (let i = 0; i < 1200; i++) sink.write('stdout', `line ${i}`);
    await sink.close();
    const rows = await db()('deployment_events').where({ deploymentId }).orderBy('seq').select('seq', 'data');
    assert.deepEqual(
      rows.map((r: { data: { line: string } }) => r.data.line),
      ['lonely', ...range(0, 1199).map((i) => `line ${i}`)],
    );
    assert.deepEqual(
      rows.map((r: { seq: number }) => r.seq),
      range(1, 1201),
    );
  });

  describe('access while streaming', () => {
    const endReason = (c: SseClient) => {
      const last = c.messages.at(-1);
      return last?.event === 'end' ? (JSON.parse(last.data) as { reason?: string }).reason : undefined;
    };
    async function member(login: string): Promise<{ user: User; client: Client }> {
      const user = await makeUser(login);
      await addMember(await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound(), user, 'member');
      return { user, client: await signedIn(a.url, login) };
    }

    it("ends a viewer's streams on every api process once they are removed from the team, long before the periodic re-check", async () => {
      const { client: mia } = await member('mia');
      const onA = await open(a, { as: mia });
      const onB = await open(b, { as: mia });
      assert.deepEqual([onA.status, onB.status], [200, 200]);
      assert.equal((await owner.delete('/api/teams/ada/members/mia')).status, 204);
      // The periodic re-check is 15 s away: ending within 2 s is the invalidation message's doing.
      await onA.waitFor((c) => c.done, 2000, 'the stream on a to end');
      await onB.waitFor((c) => c.done, 2000, 'the stream on b to end');
      assert.deepEqual([endReason(onA), endReason(onB)], ['access_revoked', 'access_revoked']);
    });

    it('ends the stream when its session signs out, or its API token is revoked', async () => {
      const { client: mia } = await member('mia');
      const stream = await open(b, { as: mia });
      assert.equal((await mia.post('/auth/logout')).status, 204);
      await stream.waitFor((c) => c.done, 2000, 'the stream to end on sign-out');
      assert.equal(endReason(stream), 'access_revoked');

      const created = await owner.post('/api/tokens', { name: 'watcher' });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const viaToken = await SseClient.connect(eventsUrl(a), { headers: { authorization: `Bearer ${created.body.token}` } });
      assert.equal(viaToken.status, 200);
      assert.equal((await owner.delete(`/api/tokens/${created.body.id}`)).status, 204);
      await viaToken.waitFor((c) => c.done, 2000, 'the stream to end on revocation');
      assert.equal(endReason(viaToken), 'access_revoked');
    });

    it('re-checks access on a timer, so a change no message announced still ends the stream', async () => {
      const mia = await makeUser('mia');
      await addMember(await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound(), mia, 'member');
      const route = await bareRoute({ accessCheckMs: 50, actor: { user: mia, via: 'session' } });
      try {
        const stream = await SseClient.connect(route.url);
        assert.equal(stream.status, 200);
        // Straight SQL: no invalidation is published, only the timer can notice.
        await db()('team_members').where({ userId: mia.id }).delete();
        await stream.waitFor((c) => c.done, 2000, 'the stream to end');
        assert.equal(endReason(stream), 'access_revoked');
      } finally {
        await route.close();
      }
    });

    it("refuses a user's 21st concurrent stream, counted across api processes, with a 429 that says why", async () => {
      const streams = await Promise.all(range(1, 20).map((i) => open(i % 2 ? a : b)));
      try {
        assert.deepEqual(
          streams.map((s) => s.status),
          range(1, 20).map(() => 200),
        );
        const extra = await open(a);
        assert.equal(extra.status, 429, extra.body);
        const body = JSON.parse(extra.body) as { error: string; message: string };
        assert.equal(body.error, 'too_many_streams');
        assert.match(body.message, /^You have 20 live deployment streams open/);
        // Someone else is not affected, and closing one frees a place.
        const { client: mia } = await member('mia');
        const other = await open(b, { as: mia });
        assert.equal(other.status, 200);
        other.close();
        streams.pop()?.close();
        const again = await until(
          'a place to free up',
          async () => {
            const s = await open(b);
            return s.status === 200 ? s : (s.close(), undefined);
          },
          3000,
        );
        streams.push(again);
      } finally {
        for (const s of streams) s.close();
      }
    });
  });

  it('pages the log lines (not status events) as JSON', async () => {
    await appendEvents(db(), deploymentId, [statusEvent('building', 'build'), logEvent('one'), logEvent('two')]);
    await appendEvents(db(), deploymentId, [
      statusEvent('deploying', 'deploy'),
      logEvent('three', 'deploy'),
      logEvent('four', 'deploy'),
      logEvent('five', 'deploy'),
    ]);
    const seen: { seq: number; line: string; stage: string }[] = [];
    let after = 0;
    let pages = 0;
    for (;;) {
      const res = await owner.get(`/api/deployments/${deploymentId}/logs?after=${after}&limit=2`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      pages++;
      seen.push(...res.body.items);
      for (const item of res.body.items) assert.deepEqual(Object.keys(item).sort(), ['at', 'line', 'seq', 'stage', 'stream']);
      if (res.body.next === null) break;
      after = res.body.next;
    }
    assert.equal(pages, 3);
    assert.deepEqual(
      seen.map((i) => [i.seq, i.line, i.stage]),
      [
        [2, 'one', 'build'],
        [3, 'two', 'build'],
        [5, 'three', 'deploy'],
        [6, 'four', 'deploy'],
        [7, 'five', 'deploy'],
      ],
    );
    const tail = await owner.get(`/api/deployments/${deploymentId}/logs?after=7`);
    assert.deepEqual(tail.body, { items: [], next: null });
    assert.equal((await owner.get(`/api/deployments/${deploymentId}/logs?limit=5000`)).status, 400);
  });
});
