// The read caches (backend/lib/cache.ts) with two api instances on one database and one Redis:
// a write through one is seen by the other at once, whether the other runs in this process (its
// own caches and subscriber) or in another process (only Redis pub/sub can tell it).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { Model } from 'objection';
import { db } from '../backend/db.ts';
import { redis } from '../backend/redis.ts';
import { getConfig } from '../backend/config.ts';
import { appCaches } from '../backend/app.ts';
import { SESSION_COOKIE, SessionSealer } from '../backend/lib/session.ts';
import { ACK_TIMEOUT_MS, CacheNode, invalidate, invalidationChannel, tag } from '../backend/lib/cache.ts';
import { transaction, invalidateOnCommit } from '../backend/lib/transaction.ts';
import { signIn } from '../backend/commands/users.ts';
import { Team, TeamMember } from '../backend/models/index.ts';
import { addMember, makeApp, makeTeam, makeUser } from './factories.ts';
import { Client, signedIn, startTestServer, type TestServer } from './http.ts';
import { apiProcess } from './support/api-process.ts';
import { until } from './support/until.ts';

const source = { type: 'git', url: 'file:///tmp/repo.git', branch: 'main' };

/** The same session, sent to another api. */
function sameSessionOn(client: Client, base: string): Client {
  const other = new Client(base);
  other.cookies = new Map(client.cookies);
  return other;
}

/** GETs twice, so the second answer is the one the caches hold; returns it. */
async function warm(client: Client, path: string) {
  await client.get(path);
  return client.get(path);
}

const slugsOf = (res: { body: { items: { slug: string; name: string }[] } }) => res.body.items.map((a) => `${a.slug}=${a.name}`);

/**
 * Runs fn and returns how many SQL queries were sent meanwhile, through db() or the knex the
 * models use (mocha may load test files as CommonJS and ES modules both: two db() instances).
 */
async function countQueries(fn: () => Promise<unknown>): Promise<number> {
  let n = 0;
  const onQuery = () => n++;
  const instances = new Set([db(), Model.knex()]);
  for (const k of instances) k.on('query', onQuery);
  try {
    await fn();
  } finally {
    for (const k of instances) k.off('query', onQuery);
  }
  return n;
}

interface Peer {
  name: string;
  start(): Promise<{ url: string; stop(): Promise<void> }>;
}

const peers: Peer[] = [
  {
    name: 'another api in this process',
    start: async () => {
      const s = await startTestServer();
      return { url: s.url, stop: s.close };
    },
  },
  {
    name: 'an api in another process',
    start: async () => {
      const p = await apiProcess();
      return { url: p.url, stop: p.stop };
    },
  },
];

for (const peer of peers) {
  describe(`read caches: a write through one api is seen at once by ${peer.name}`, function () {
    this.timeout(60_000);
    let a: TestServer;
    let b: { url: string; stop(): Promise<void> };
    before(async () => {
      [a, b] = await Promise.all([startTestServer(), peer.start()]);
    });
    after(async () => {
      await Promise.all([a.close(), b.stop()]);
    });

    /** olive owns acme (two apps); max is in it with `role`; each has a session on A and on B. */
    async function world(role: 'member' | 'admin' = 'member') {
      const oliveA = await signedIn(a.url, 'olive');
      const maxA = await signedIn(a.url, 'max');
      const olive = await makeUser('olive');
      const max = await makeUser('max');
      const team = await makeTeam(olive, 'acme');
      // Several members: Pro (Free has one seat).
      await db()('teams').where({ id: team.id }).update({ plan: 'pro' });
      await addMember(team, max, role);
      await makeApp(olive, team, 'shop');
      await makeApp(olive, team, 'diary');
      return { team, oliveA, maxA, oliveB: sameSessionOn(oliveA, b.url), maxB: sameSessionOn(maxA, b.url) };
    }

    it('refuses a logged-out session cookie on the other api', async () => {
      const { maxA, maxB } = await world();
      assert.equal((await warm(maxB, '/api/me')).status, 200);
      assert.equal((await warm(maxB, '/api/teams/acme/apps')).status, 200);
      assert.equal((await maxA.post('/auth/logout')).status, 204);
      assert.equal((await maxB.get('/api/me')).status, 401);
      assert.equal((await maxB.get('/api/teams/acme/apps')).status, 401);
    });

    it('answers 404 for the team and its apps to a member removed through the other api', async () => {
      const { oliveA, maxB } = await world();
      assert.equal((await warm(maxB, '/api/teams/acme')).status, 200);
      assert.deepEqual(slugsOf(await warm(maxB, '/api/teams/acme/apps')), ['diary=diary', 'shop=shop']);
      assert.equal((await warm(maxB, '/api/apps/shop')).status, 200);
      assert.equal((await oliveA.delete('/api/teams/acme/members/max')).status, 204);
      for (const path of ['/api/teams/acme', '/api/teams/acme/apps', '/api/apps/shop']) {
        const res = await maxB.get(path);
        assert.equal(res.status, 404, `${path}: ${JSON.stringify(res.body)}`);
      }
    });

    it("shows apps created, renamed and deleted through one api in the other's list and pages", async () => {
      const { oliveA, maxB } = await world('admin');
      const adminA = sameSessionOn(maxB, a.url);
      assert.deepEqual(slugsOf(await warm(maxB, '/api/teams/acme/apps')), ['diary=diary', 'shop=shop']);

      assert.equal((await adminA.post('/api/teams/acme/apps', { name: 'Docs', slug: 'guide', source })).status, 201);
      assert.deepEqual(slugsOf(await maxB.get('/api/teams/acme/apps')), ['diary=diary', 'guide=Docs', 'shop=shop']);

      assert.equal((await warm(maxB, '/api/apps/guide')).body.name, 'Docs');
      assert.equal((await adminA.patch('/api/apps/guide', { name: 'Handbook' })).status, 200);
      assert.deepEqual(slugsOf(await maxB.get('/api/teams/acme/apps')), ['diary=diary', 'guide=Handbook', 'shop=shop']);
      assert.equal((await maxB.get('/api/apps/guide')).body.name, 'Handbook');

      assert.equal((await oliveA.delete('/api/apps/guide')).status, 204);
      assert.deepEqual(slugsOf(await maxB.get('/api/teams/acme/apps')), ['diary=diary', 'shop=shop']);
      assert.equal((await maxB.get('/api/apps/guide')).status, 404);
    });

    it('lets a role change through one api decide what the other allows', async () => {
      const { oliveA, maxB } = await world('member');
      const app = (n: number) => ({ name: `app ${n}`, slug: `app-${n}`, source });
      assert.equal((await warm(maxB, '/api/teams/acme')).body.role, 'member');
      assert.equal((await maxB.post('/api/teams/acme/apps', app(1))).status, 403);

      assert.equal((await oliveA.patch('/api/teams/acme/members/max', { role: 'admin' })).status, 200);
      assert.equal((await maxB.get('/api/teams/acme')).body.role, 'admin');
      assert.equal((await maxB.post('/api/teams/acme/apps', app(2))).status, 201);

      assert.equal((await warm(maxB, '/api/teams/acme')).body.role, 'admin');
      assert.equal((await oliveA.patch('/api/teams/acme/members/max', { role: 'member' })).status, 200);
      assert.equal((await maxB.post('/api/teams/acme/apps', app(3))).status, 403);
      assert.equal((await maxB.patch('/api/apps/app-2', { name: 'x' })).status, 403);
    });

    it('shows a team rename, a deleted team and an accepted invitation on the other api', async () => {
      const { oliveA, oliveB } = await world();
      assert.equal((await warm(oliveB, '/api/teams/acme')).body.name, 'acme');
      assert.equal((await oliveA.patch('/api/teams/acme', { name: 'Acme Inc' })).status, 200);
      assert.equal((await oliveB.get('/api/teams/acme')).body.name, 'Acme Inc');

      const zoeA = await signedIn(a.url, 'zoe');
      const zoeB = sameSessionOn(zoeA, b.url);
      assert.equal((await warm(zoeB, '/api/teams/acme/apps')).status, 404);
      const invitation = (await oliveA.post('/api/teams/acme/invitations', { login: 'zoe' })).body;
      assert.equal((await zoeA.post(`/api/invitations/${invitation.id}/accept`)).status, 200);
      assert.equal((await zoeB.get('/api/teams/acme/apps')).status, 200);

      assert.equal((await oliveA.post('/api/teams', { slug: 'spare', name: 'Spare' })).status, 201);
      assert.equal((await warm(oliveB, '/api/teams/spare')).status, 200);
      assert.equal((await oliveA.delete('/api/teams/spare')).status, 204);
      assert.equal((await oliveB.get('/api/teams/spare')).status, 404);
    });

    it("shows a user's refreshed profile on the other api after they sign in again", async () => {
      const { maxB } = await world();
      assert.equal((await warm(maxB, '/api/me')).body.user.name, null);
      await signIn(db(), { login: 'max', name: 'Max Planck' });
      assert.equal((await maxB.get('/api/me')).body.user.name, 'Max Planck');
    });
  });
}

describe('read caches: serving, expiry and a broken subscriber', function () {
  this.timeout(30_000);
  let a: TestServer;
  let b: TestServer;
  before(async () => {
    [a, b] = await Promise.all([startTestServer(), startTestServer()]);
  });
  after(async () => {
    await Promise.all([a.close(), b.close()]);
  });

  const node = () => appCaches(b.app)!;

  async function world() {
    const olive = await makeUser('olive');
    const team = await makeTeam(olive, 'acme');
    await makeApp(olive, team, 'shop');
    return { team, oliveB: await signedIn(b.url, 'olive'), oliveA: await signedIn(a.url, 'olive') };
  }

  it('answers a repeated apps page, team and app without a single SQL query', async () => {
    const { oliveB } = await world();
    for (const path of ['/api/teams/acme/apps', '/api/teams/acme', '/api/apps/shop']) {
      const first = await oliveB.get(path);
      assert.equal(first.status, 200);
      let again: Awaited<ReturnType<Client['get']>> | undefined;
      assert.equal(
        await countQueries(async () => {
          again = await oliveB.get(path);
        }),
        0,
        path,
      );
      assert.deepEqual(again!.body, first.body);
      assert.match(again!.headers.get('content-type') ?? '', /^application\/json/);
    }
    // Not cached: API tokens are looked up on every request.
    const created = await oliveB.post('/api/tokens', { name: 'ci' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const { token } = created.body;
    const api = new Client(b.url).withToken(token);
    await api.get('/api/teams/acme/apps');
    assert.ok((await countQueries(() => api.get('/api/teams/acme/apps'))) >= 1);
  });

  it('serves stale data after a write that bypasses the commands (the cache is real), until invalidated', async () => {
    const { team, oliveB } = await world();
    await warm(oliveB, '/api/teams/acme');
    await Team.query(db()).patch({ name: 'Renamed in SQL' }).where({ id: team.id });
    assert.equal((await oliveB.get('/api/teams/acme')).body.name, 'acme');
    // What another process's invalidate() sends; B's subscriber hears it a moment later, which is
    // when B evicts the tag.
    const heard = new Promise<void>((resolve) => {
      const stop = node().onEvict((tags) => {
        if (!tags.includes(tag.team(team.id))) return;
        stop();
        resolve();
      });
    });
    await redis().publish(invalidationChannel(redis()), JSON.stringify({ origin: 'another-process', tags: [tag.team(team.id)] }));
    await heard;
    assert.equal((await oliveB.get('/api/teams/acme')).body.name, 'Renamed in SQL');
  });

  it('never serves a session past the expiry its row holds, whatever the cookie says', async () => {
    const olive = await makeUser('olive');
    const [row] = (await db()('sessions')
      .insert({ userId: olive.id, expiresAt: new Date(Date.now() + 1500) })
      .returning('id')) as { id: string }[];
    const sealer = new SessionSealer(getConfig().sessionSecret);
    const client = new Client(b.url);
    client.cookies.set(SESSION_COOKIE, sealer.seal({ sessionId: row.id, csrf: 'x', expiresAt: Date.now() + 3_600_000 }));
    assert.equal((await warm(client, '/api/me')).status, 200);
    await new Promise((r) => setTimeout(r, 1600));
    assert.equal((await client.get('/api/me')).status, 401);
  });

  it('bypasses the caches while its subscriber is down, and serves again once it is back', async () => {
    const { team, oliveB } = await world();
    const rename = (name: string) => Team.query(db()).patch({ name }).where({ id: team.id });
    assert.equal((await warm(oliveB, '/api/teams/acme')).body.name, 'acme');
    assert.ok(node().serving);

    const subscriber = node().subscriberConnection;
    subscriber.disconnect();
    await until('the node notices', () => !node().serving);
    // Writes B cannot hear about: each read goes to Postgres, none is kept.
    for (const name of ['Down 1', 'Down 2']) {
      await rename(name);
      assert.equal((await oliveB.get('/api/teams/acme')).body.name, name);
    }
    // Another process's write, whose message B misses.
    await rename('Missed');
    await redis().publish(invalidationChannel(redis()), JSON.stringify({ origin: 'another-process', tags: [tag.team(team.id)] }));

    await subscriber.connect();
    assert.ok(await node().whenServing());
    assert.equal((await oliveB.get('/api/teams/acme')).body.name, 'Missed');
    assert.equal(await countQueries(() => oliveB.get('/api/teams/acme')), 0, 'serving again once resubscribed');
  });

  it('recovers by itself when Redis drops the subscriber connection, forgetting what it held', async () => {
    const { team, oliveB } = await world();
    await warm(oliveB, '/api/teams/acme');
    const subscriber = node().subscriberConnection;
    const { localPort } = subscriber.stream as { localPort?: number };
    await redis().client('KILL', 'ADDR', `127.0.0.1:${localPort}`);
    await until('the node notices', () => !node().serving);
    await Team.query(db()).patch({ name: 'Changed while dropped' }).where({ id: team.id });
    assert.ok(await node().whenServing(), 'resubscribed after the reconnect');
    assert.equal((await oliveB.get('/api/teams/acme')).body.name, 'Changed while dropped');
  });

  it('invalidates the tags of a transaction only after it commits, and not at all when it rolls back', async () => {
    const observer = new CacheNode(redis());
    try {
      assert.ok(await observer.whenServing());
      const cache = observer.cache<string>('observed');
      const mine = { committed: `team:${randomUUID()}`, rolledBack: `team:${randomUUID()}`, direct: `team:${randomUUID()}` };
      for (const t of Object.values(mine)) cache.set(t, 'cached', [t], cache.begin());

      let beforeCommit: string | undefined;
      await transaction(db(), async (trx: Knex.Transaction) => {
        await invalidateOnCommit(trx, [mine.committed]);
        await trx.raw('select 1');
        beforeCommit = cache.get(mine.committed);
      });
      assert.equal(beforeCommit, 'cached', 'evicted before the commit: a reader could cache the old row again');
      assert.equal(cache.get(mine.committed), undefined);

      await assert.rejects(
        transaction(db(), async (trx: Knex.Transaction) => {
          await invalidateOnCommit(trx, [mine.rolledBack]);
          throw new Error('roll back');
        }),
        /roll back/,
      );
      assert.equal(cache.get(mine.rolledBack), 'cached');

      // Outside a transaction the write has committed already: at once.
      await invalidateOnCommit(db(), [mine.direct]);
      assert.equal(cache.get(mine.direct), undefined);

      // A savepoint's release is not the commit; nor is a plain knex.transaction() left out.
      const nested = `team:${randomUUID()}`;
      const plain = `team:${randomUUID()}`;
      for (const t of [nested, plain]) cache.set(t, 'cached', [t], cache.begin());
      let afterSavepoint: string | undefined;
      await transaction(db(), async (outer: Knex.Transaction) => {
        await transaction(outer, (inner) => invalidateOnCommit(inner, [nested]));
        afterSavepoint = cache.get(nested);
      });
      assert.equal(afterSavepoint, 'cached');
      assert.equal(cache.get(nested), undefined);
      let inPlain: string | undefined;
      await db().transaction(async (trx) => {
        await invalidateOnCommit(trx, [plain]);
        inPlain = cache.get(plain);
      });
      assert.equal(inPlain, 'cached');
      assert.equal(cache.get(plain), undefined, 'evicted in this process as the commit resolves');
    } finally {
      await observer.close();
    }
  });

  it('does not let a subscriber that never confirms hold writes up for longer than the timeout', async () => {
    const mute = redis().duplicate();
    await mute.subscribe(invalidationChannel(redis()));
    try {
      const started = Date.now();
      await invalidate([`team:${randomUUID()}`]);
      const took = Date.now() - started;
      assert.ok(took >= ACK_TIMEOUT_MS - 50 && took < ACK_TIMEOUT_MS + 1000, `took ${took} ms`);
    } finally {
      await mute.quit();
    }
    const started = Date.now();
    await invalidate([`team:${randomUUID()}`]);
    assert.ok(Date.now() - started < ACK_TIMEOUT_MS / 2, 'every live subscriber confirms at once');
  });

  it('keeps a member removed directly in SQL out once invalidated, and never caches a 404', async () => {
    const { team, oliveB } = await world();
    const max = await makeUser('max');
    const maxB = await signedIn(b.url, 'max');
    assert.equal((await warm(maxB, '/api/teams/acme')).status, 404);
    await addMember(team, max, 'member');
    assert.equal((await maxB.get('/api/teams/acme')).status, 200, 'a 404 was cached');
    await TeamMember.query(db()).delete().where({ teamId: team.id, userId: max.id });
    await invalidateOnCommit(db(), [tag.team(team.id)]);
    assert.equal((await maxB.get('/api/teams/acme')).status, 404);
    assert.equal((await oliveB.get('/api/teams/acme')).status, 200);
  });
});
