// The remembered route matches (backend/lib/route-match-cache.ts) must route exactly as the router
// does: same layers, a route added later found, and no request able to change another's answer
// (@koa/router appends to ctx.matched, which is the first router's match array).
import assert from 'node:assert/strict';
import Router from '@koa/router';
import { cacheRouteMatches } from '../backend/lib/route-match-cache.ts';

const paths = (layers: { path: string | RegExp }[]) => layers.map((l) => String(l.path));

describe('cacheRouteMatches', () => {
  function router() {
    const r = new Router({ prefix: '/api' });
    r.use((_ctx, next) => next());
    r.get('/teams/:team/apps', () => undefined);
    r.post('/teams/:team/apps', () => undefined);
    r.get('/apps/:app', () => undefined);
    return r;
  }

  it('answers what the router answers, for matches, wrong methods and misses', () => {
    const plain = router();
    const cached = cacheRouteMatches(router());
    for (const [path, method] of [
      ['/api/teams/t/apps', 'GET'],
      ['/api/teams/t/apps', 'DELETE'],
      ['/api/nope', 'GET'],
      ['/API/apps/a', 'GET'],
    ]) {
      for (let i = 0; i < 2; i++) {
        const a = plain.match(path, method);
        const b = cached.match(path, method);
        assert.deepEqual([paths(b.path), paths(b.pathAndMethod), b.route], [paths(a.path), paths(a.pathAndMethod), a.route], `${method} ${path}`);
      }
    }
  });

  it('gives every call its own ctx.matched array', () => {
    const cached = cacheRouteMatches(router());
    const first = cached.match('/api/teams/t/apps', 'GET');
    const layers = first.path.length;
    first.path.push(...first.path); // what a later router does to ctx.matched
    assert.equal(cached.match('/api/teams/t/apps', 'GET').path.length, layers);
  });

  it('finds a route added after a request was matched', () => {
    const cached = cacheRouteMatches(router());
    assert.equal(cached.match('/api/me', 'GET').route, false);
    cached.get('/me', () => undefined);
    assert.equal(cached.match('/api/me', 'GET').route, true);
  });
});
