// @koa/router finds a request's route by testing every layer's regexp in turn (and calling a
// disabled `debug` twice per layer): on the /api router, ~70 layers for every request, more than
// the rest of a cached read costs. Which layers match is a pure function of the path and the method
// while the router's stack stays as it is (its host option, the one other input, is checked before
// match() and not used here), so the answer is remembered per (method, path).
import type Router from '@koa/router';

/** Paths longer than this are matched every time: they are not the ones that repeat. */
const MAX_PATH = 256;
/** When a new key would exceed this, everything is forgotten: simple, and bounds memory. */
const MAX_ENTRIES = 10_000;

type Match = ReturnType<Router['match']>;

/** Makes `router.match` remember its answers. Call once every route has been added. */
export function cacheRouteMatches(router: Router): Router {
  const match = router.match.bind(router);
  const memo = new Map<string, Match>();
  let layers = router.stack.length;
  router.match = (path: string, method: string): Match => {
    if (path.length > MAX_PATH) return match(path, method);
    // A route added later (nothing does today) must not be missed.
    if (router.stack.length !== layers) {
      memo.clear();
      layers = router.stack.length;
    }
    const key = `${method} ${path}`;
    let found = memo.get(key);
    if (!found) {
      if (memo.size >= MAX_ENTRIES) memo.clear();
      found = match(path, method);
      memo.set(key, found);
    }
    // The router appends later routers' layers to ctx.matched, which is this `path` array for the
    // first router a request meets: each request gets its own copy.
    return { path: [...found.path], pathAndMethod: found.pathAndMethod, route: found.route };
  };
  return router;
}
