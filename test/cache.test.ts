// TaggedCache on its own: tags, the race between a read and a write, expiry, bounds, bypass.
import assert from 'node:assert/strict';
import { TaggedCache } from '../backend/lib/tagged-cache.ts';

function serving<V>(options?: ConstructorParameters<typeof TaggedCache<V>>[1]): TaggedCache<V> {
  const cache = new TaggedCache<V>('test', options);
  cache.reset(true);
  return cache;
}

describe('TaggedCache', () => {
  it('evicts exactly the entries carrying an evicted tag', () => {
    const cache = serving<string>();
    cache.set('s1', 'ada', ['session:1', 'user:ada'], cache.begin());
    cache.set('s2', 'ada again', ['session:2', 'user:ada'], cache.begin());
    cache.set('s3', 'bob', ['session:3', 'user:bob'], cache.begin());
    cache.evict(['user:ada']);
    assert.equal(cache.get('s1'), undefined);
    assert.equal(cache.get('s2'), undefined);
    assert.equal(cache.get('s3'), 'bob');
    cache.evict(['session:3']);
    assert.equal(cache.size, 0);
  });

  it('does not store what a read got if one of its tags was evicted while it ran', () => {
    const cache = serving<string>();
    const ticket = cache.begin(); // the read begins, and sees the old row
    cache.evict(['team:1']); // the write commits and invalidates
    assert.equal(cache.set('k', 'old row', ['team:1'], ticket), false);
    assert.equal(cache.get('k'), undefined);
    // Another team's write does not stop it.
    const next = cache.begin();
    cache.evict(['team:2']);
    assert.equal(cache.set('k', 'fresh row', ['team:1'], next), true);
    assert.equal(cache.get('k'), 'fresh row');
  });

  it('refuses reads older than the evictions it no longer remembers', () => {
    const cache = serving<string>();
    const ticket = cache.begin();
    for (let i = 0; i < 10_001; i++) cache.evict([`team:${i}`]);
    assert.equal(cache.set('k', 'v', ['team:unrelated'], ticket), false);
    assert.equal(cache.set('k', 'v', ['team:unrelated'], cache.begin()), true);
  });

  it('expires entries after the TTL, or sooner at the expiry they were given', () => {
    // A controlled clock: the test says when time passes, instead of waiting a real TTL out.
    let now = 1_000_000;
    const cache = serving<string>({ ttlMs: 400, now: () => now });
    cache.set('ttl', 'v', ['t'], cache.begin());
    assert.equal(cache.set('capped', 'v', ['t'], cache.begin(), now + 20), true);
    assert.equal(cache.set('past', 'v', ['t'], cache.begin(), now - 1), false);
    now += 19;
    assert.equal(cache.get('capped'), 'v');
    now += 1;
    assert.equal(cache.get('capped'), undefined);
    assert.equal(cache.get('ttl'), 'v');
    now += 379;
    assert.equal(cache.get('ttl'), 'v');
    now += 1;
    assert.equal(cache.get('ttl'), undefined);
  });

  it('drops everything rather than grow past its bound', () => {
    const cache = serving<number>({ maxEntries: 3 });
    for (let i = 0; i < 3; i++) cache.set(`k${i}`, i, ['t'], cache.begin());
    cache.set('k0', 10, ['t'], cache.begin()); // replacing is not growing
    assert.equal(cache.size, 3);
    cache.set('k3', 3, ['t'], cache.begin());
    assert.equal(cache.size, 1);
    assert.equal(cache.get('k3'), 3);
  });

  it('neither serves nor stores while bypassed, and comes back empty', () => {
    const cache = serving<string>();
    cache.set('k', 'v', ['t'], cache.begin());
    const ticket = cache.begin();
    cache.reset(false);
    assert.equal(cache.get('k'), undefined);
    assert.equal(cache.set('k', 'v', ['t'], cache.begin()), false);
    cache.reset(true);
    assert.equal(cache.get('k'), undefined);
    assert.equal(cache.set('k', 'read before the reset', ['t'], ticket), false);
  });

  it('load() caches what comes with tags, and never a miss or an error', async () => {
    const cache = serving<string>();
    let loads = 0;
    const found = () => cache.load('hit', async () => ({ value: `v${++loads}`, tags: ['t'] }));
    assert.equal(await found(), 'v1');
    assert.equal(await found(), 'v1');
    const missing = () => cache.load('miss', async () => ({ value: undefined }));
    assert.equal(await missing(), undefined);
    assert.equal(cache.get('miss'), undefined);
    await assert.rejects(
      cache.load('boom', async () => {
        throw new Error('no');
      }),
      /no/,
    );
    assert.equal(cache.size, 1);
  });
});
