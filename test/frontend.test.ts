// The dashboard's stores, composables and helpers, outside a browser: Pinia's testing helpers,
// happy-dom for document and localStorage, and a scripted fetch or EventSource where the API
// would answer (the browser tests in dashboard-e2e.int.test.ts run them against the real one).
import assert from 'node:assert/strict';
import { Window } from 'happy-dom';
import { createTestingPinia } from '@pinia/testing';
import { setActivePinia } from 'pinia';
import { ApiError, api, csrfToken, fieldErrors, onUnauthenticated } from '../frontend/src/lib/api.ts';
import { envChanges, parseDotenv, toDotenv } from '../frontend/src/lib/dotenv.ts';
import { DeploymentFeed, type EventSourceLike } from '../frontend/src/lib/deployment-feed.ts';
import { ago, between, duration } from '../frontend/src/lib/format.ts';
import { useSession } from '../frontend/src/stores/session.ts';
import { useApps } from '../frontend/src/stores/apps.ts';
import { useDeployments } from '../frontend/src/stores/deployments.ts';
import { useToasts } from '../frontend/src/stores/toasts.ts';
import { useAction } from '../frontend/src/composables/useAction.ts';
import { slugProblem, suggestSlug, APP_SLUG_LENGTH } from '../backend/lib/slug-rules.ts';
import { appSlug } from '../backend/lib/slugs.ts';
import { until } from './support/until.ts';

type Call = { method: string; url: string; headers: Record<string, string>; body: unknown };

/** A fetch that answers from a script and records what was asked. */
function scriptedFetch(answers: Record<string, (call: Call) => { status: number; body?: unknown }>) {
  const calls: Call[] = [];
  const fetch = async (url: string, init: RequestInit = {}) => {
    const call: Call = {
      method: init.method ?? 'GET',
      url,
      headers: (init.headers ?? {}) as Record<string, string>,
      body: init.body ? JSON.parse(String(init.body)) : undefined,
    };
    calls.push(call);
    const handler = answers[`${call.method} ${url.split('?')[0]}`];
    const { status, body } = handler ? handler(call) : { status: 404, body: { error: 'not_found', message: `no script for ${call.method} ${url}` } };
    return new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  };
  return { calls, fetch };
}

describe('dashboard (unit)', () => {
  const realFetch = globalThis.fetch;
  let window: Window;

  beforeEach(() => {
    window = new Window({ url: 'http://localhost:3000/' });
    Object.assign(globalThis, { document: window.document, localStorage: window.localStorage });
    setActivePinia(createTestingPinia({ stubActions: false, createSpy: (fn?: (...args: unknown[]) => unknown) => fn ?? (() => undefined) }));
  });
  afterEach(async () => {
    globalThis.fetch = realFetch;
    delete (globalThis as Record<string, unknown>).document;
    delete (globalThis as Record<string, unknown>).localStorage;
    await window.happyDOM.close();
  });

  describe('api client', () => {
    it('sends the CSRF cookie back on writes only, and turns field problems into per-field messages', async () => {
      window.document.cookie = 'rhone_csrf=tok%2Fen';
      assert.equal(csrfToken(), 'tok/en');
      const { calls, fetch } = scriptedFetch({
        'GET /api/me': () => ({ status: 200, body: { ok: 1 } }),
        'POST /api/teams/acme/apps': () => ({
          status: 400,
          body: {
            error: 'validation_error',
            message: 'body.slug: is reserved',
            details: [
              { field: 'body.slug', message: 'is reserved; choose another' },
              { field: 'body.source.url', message: 'must be a URL' },
            ],
          },
        }),
      });
      globalThis.fetch = fetch as typeof globalThis.fetch;
      await api.get('/api/me');
      const err = await api.post('/api/teams/acme/apps', { slug: 'api' }).catch((e) => e);
      assert.ok(err instanceof ApiError);
      assert.equal(err.status, 400);
      assert.deepEqual(err.fields, { slug: 'is reserved; choose another', 'source.url': 'must be a URL' });
      assert.equal(calls[0].headers['x-csrf-token'], undefined);
      assert.equal(calls[1].headers['x-csrf-token'], 'tok/en');
    });

    it('tells listeners when the session is gone (401), and says what to do when the server is unreachable', async () => {
      let told = 0;
      const off = onUnauthenticated(() => told++);
      globalThis.fetch = scriptedFetch({ 'GET /api/me': () => ({ status: 401, body: { error: 'unauthenticated', message: 'Sign in first.' } }) })
        .fetch as typeof globalThis.fetch;
      await assert.rejects(api.get('/api/me'), /Sign in first/);
      assert.equal(told, 1);
      off();
      globalThis.fetch = (async () => {
        throw new TypeError('fetch failed');
      }) as typeof globalThis.fetch;
      await assert.rejects(api.get('/api/me'), (e: ApiError) => e.code === 'network' && /not done/.test(e.message));
    });

    it('reads the __Host- CSRF cookie the api sets over https, before any unprefixed one', () => {
      assert.equal(csrfToken('__Host-rhone_csrf=a%2Fb'), 'a/b');
      // An app on a sibling subdomain can plant rhone_csrf for the whole domain, never __Host-rhone_csrf.
      assert.equal(csrfToken('rhone_csrf=planted; __Host-rhone_csrf=real'), 'real');
      assert.equal(csrfToken('other=1'), '');
    });

    it('maps only body fields to bare names', () => {
      assert.deepEqual(
        fieldErrors([
          { field: 'params.app', message: 'bad' },
          { field: 'body', message: 'send something' },
        ]),
        { 'params.app': 'bad', _: 'send something' },
      );
      assert.deepEqual(fieldErrors('nonsense'), {});
    });
  });

  describe('session store', () => {
    it('asks nothing without the CSRF cookie (no session), and loads the user and role permissions with it', async () => {
      const { calls, fetch } = scriptedFetch({
        'GET /api/me': () => ({
          status: 200,
          body: {
            user: { id: 'u1', login: 'ada' },
            teams: [
              { slug: 'ada', name: 'ada', role: 'owner', plan: 'free', personal: true, can: ['app:create'] },
              { slug: 'acme', name: 'Acme', role: 'member', plan: 'free', personal: false, can: ['app:read'] },
            ],
          },
        }),
      });
      globalThis.fetch = fetch as typeof globalThis.fetch;
      const session = useSession();
      assert.equal(await session.load(), null);
      assert.equal(calls.length, 0);
      window.document.cookie = 'rhone_csrf=x';
      await session.load();
      assert.equal(session.user?.login, 'ada');
      assert.equal(session.team?.slug, 'ada', 'the first team when none was chosen');
      session.selectTeam('acme');
      assert.equal(localStorage.getItem('rhone.team'), 'acme');
      assert.equal(session.can('app:create'), false);
      assert.equal(session.can('app:create', 'ada'), true);
      assert.equal(session.can('app:read', 'nowhere'), false);
    });
  });

  describe('apps and deployments stores', () => {
    it('keeps a team list sorted as apps are created, renamed and deleted', async () => {
      const app = (slug: string, name = slug) => ({ slug, name, team: 'acme' });
      globalThis.fetch = scriptedFetch({
        'GET /api/teams/acme/apps': () => ({ status: 200, body: { items: [app('beta')], next: null } }),
        'POST /api/teams/acme/apps': (c) => ({ status: 201, body: app((c.body as { slug: string }).slug) }),
        'PATCH /api/apps/alpha': () => ({ status: 200, body: app('alpha', 'Alpha!') }),
        'DELETE /api/apps/beta': () => ({ status: 204 }),
      }).fetch as typeof globalThis.fetch;
      const apps = useApps();
      await apps.loadTeam('acme');
      await apps.create('acme', { slug: 'alpha' } as never);
      assert.deepEqual(
        apps.lists.acme.map((a) => a.slug),
        ['alpha', 'beta'],
      );
      await apps.update('alpha', { name: 'Alpha!' });
      assert.equal(apps.lists.acme[0].name, 'Alpha!');
      await apps.remove('beta');
      assert.deepEqual(
        apps.lists.acme.map((a) => a.slug),
        ['alpha'],
      );
      assert.equal(apps.bySlug.beta, undefined);
    });

    it('puts a new deployment at the top of its app list and applies live status events', async () => {
      const d = (n: number, status = 'live') => ({ id: `d${n}`, app: 'web', number: n, status, stage: null });
      globalThis.fetch = scriptedFetch({
        'GET /api/apps/web/deployments': () => ({ status: 200, body: { items: [d(2), d(1, 'replaced')], next: null } }),
        'POST /api/apps/web/deploy': () => ({ status: 202, body: d(3, 'queued') }),
      }).fetch as typeof globalThis.fetch;
      const store = useDeployments();
      await store.loadList('web');
      await store.deploy('web');
      assert.deepEqual(
        store.ofApp('web').map((x) => x.number),
        [3, 2, 1],
      );
      store.applyStatus('d3', 'building', 'build');
      assert.deepEqual([store.byId.d3.status, store.byId.d3.stage], ['building', 'build']);
    });
  });

  describe('useAction', () => {
    it('is pending while it runs, keeps field errors for the form, and toasts other failures', async () => {
      const toasts = useToasts();
      const fails = useAction(async (kind: string) => {
        throw kind === 'field' ? new ApiError(400, 'validation_error', 'slug: bad', { slug: 'bad' }) : new ApiError(409, 'conflict', 'Taken.');
      });
      const pending = fails.execute('field');
      assert.equal(fails.pending.value, true);
      assert.equal(await pending, undefined);
      assert.deepEqual([fails.pending.value, fails.fields.value, toasts.items.length], [false, { slug: 'bad' }, 0]);
      await fails.execute('other');
      assert.deepEqual(
        toasts.items.map((t) => [t.kind, t.text]),
        [['error', 'Taken.']],
      );
      const works = useAction(async () => 7, { success: (n) => `got ${n}` });
      assert.equal(await works.execute(), 7);
      assert.equal(toasts.items.at(-1)?.text, 'got 7');
    });
  });

  describe('DeploymentFeed', () => {
    class FakeSource implements EventSourceLike {
      readyState = 1;
      onerror: ((ev: Event) => void) | null = null;
      listeners = new Map<string, ((ev: MessageEvent) => void)[]>();
      closed = false;
      constructor(readonly url: string) {}
      addEventListener(type: string, l: (ev: MessageEvent) => void) {
        this.listeners.set(type, [...(this.listeners.get(type) ?? []), l]);
      }
      emit(type: string, id: number | string, data: unknown = {}) {
        for (const l of this.listeners.get(type) ?? []) l({ lastEventId: String(id), data: JSON.stringify(data) } as MessageEvent);
      }
      close() {
        this.closed = true;
        this.readyState = 2;
      }
    }

    it('shows each line once, in order, resumes after the last id when the stream gives up, and stops at end', () => {
      const sources: FakeSource[] = [];
      const statuses: string[] = [];
      // The feed's reconnect timer, run when the test says instead of after a real pause.
      const retries: { ms: number; run: () => void }[] = [];
      const feed = new DeploymentFeed('dep-1', {
        later: (run, ms) => {
          retries.push({ ms, run });
          return () => {};
        },
        open: (url) => {
          const s = new FakeSource(url);
          sources.push(s);
          return s;
        },
        onStatus: (e) => statuses.push(e.status),
        schedule: (fn) => fn(),
      });
      feed.start();
      assert.equal(sources[0].url, '/api/deployments/dep-1/events');
      const log = (seq: number, line: string) => sources.at(-1)!.emit('log', seq, { stage: 'build', stream: 'stdout', line, at: '2026-11-27T00:00:00Z' });
      log(1, 'one');
      log(2, 'two');
      log(2, 'two again');
      sources[0].emit('status', 3, { status: 'building', stage: 'build' });
      log(1, 'old');
      // The server ended the response with an error status: the browser will not retry by itself.
      sources[0].readyState = 2;
      sources[0].onerror!(new Event('error'));
      assert.deepEqual(
        retries.map((r) => r.ms),
        [500],
      );
      assert.equal(sources.length, 1, 'not before the pause');
      retries[0].run();
      assert.equal(sources.length, 2);
      assert.equal(sources[1].url, '/api/deployments/dep-1/events?lastEventId=3');
      log(4, 'four');
      sources[1].emit('status', 5, { status: 'live', stage: 'deploy' });
      sources[1].emit('end', 6);
      assert.deepEqual(
        feed.lines.map((l) => [l.seq, l.line]),
        [
          [1, 'one'],
          [2, 'two'],
          [4, 'four'],
        ],
      );
      assert.deepEqual(statuses, ['building', 'live']);
      assert.equal(feed.ended.value, true);
      assert.equal(sources[1].closed, true);
      assert.ok(feed.version.value > 0);
      feed.close();
    });
  });

  describe('DeploymentFeed with history pages', () => {
    it('loads the log in pages first, then streams from after its last line, each line once', async () => {
      const asked: number[] = [];
      const line = (seq: number) => ({ seq, stage: 'build', stream: 'stdout', line: `l${seq}`, at: '2026-11-27T00:00:00Z' });
      const pages: Record<number, { items: ReturnType<typeof line>[]; next: number | null }> = {
        0: { items: [line(1), line(2)], next: 2 },
        2: { items: [line(4)], next: null },
      };
      const urls: string[] = [];
      let emit: ((type: string, id: number, data: unknown) => void) | undefined;
      const feed = new DeploymentFeed('d1', {
        open: (url) => {
          urls.push(url);
          const listeners = new Map<string, (ev: MessageEvent) => void>();
          emit = (type, id, data) => listeners.get(type)?.({ lastEventId: String(id), data: JSON.stringify(data) } as MessageEvent);
          return { readyState: 1, onerror: null, addEventListener: (t: string, l: (ev: MessageEvent) => void) => listeners.set(t, l), close() {} };
        },
        schedule: (fn) => fn(),
        history: async (after) => {
          asked.push(after);
          return pages[after];
        },
      });
      feed.start();
      await until('the stream to open after the history pages', () => urls.length > 0);
      assert.deepEqual(asked, [0, 2]);
      assert.deepEqual(urls, ['/api/deployments/d1/events?lastEventId=4']);
      emit!('log', 4, { stage: 'build', stream: 'stdout', line: 'l4 again', at: '' });
      emit!('log', 5, { stage: 'deploy', stream: 'system', line: 'l5', at: '' });
      assert.deepEqual(
        feed.lines.map((l) => l.line),
        ['l1', 'l2', 'l4', 'l5'],
      );
      feed.close();
    });
  });

  describe('helpers', () => {
    it('parses pasted .env files and computes what saving changes', () => {
      const text =
        '# comment\nexport A=1\nB="two words # not a comment"\nC=\'single $x\'\nD="multi\nline"\nE=plain # trailing comment\nbad line\n9X=1\nF="never closed';
      const { vars, problems } = parseDotenv(text);
      assert.deepEqual(vars, { A: '1', B: 'two words # not a comment', C: 'single $x', D: 'multi\nline', E: 'plain' });
      assert.deepEqual(
        problems.map((p) => p.line),
        [8, 9, 10],
      );
      assert.deepEqual(parseDotenv(toDotenv({ X: 'a "quoted"\nvalue\\', Y: 'simple' })).vars, { X: 'a "quoted"\nvalue\\', Y: 'simple' });
      const c = envChanges({ A: '1', B: '2', C: '3' }, { A: '1', B: 'two', D: '4' });
      assert.deepEqual(c.body, { B: 'two', D: '4', C: null });
      assert.deepEqual([c.added, c.changed, c.removed], [['D'], ['B'], ['C']]);
    });

    it('validates slugs exactly as the API does, and suggests one from a name', () => {
      for (const s of ['ok-app', 'a', 'Bad', 'api', 'x--y', '-x', 'a'.repeat(31), 'abc']) {
        assert.equal(slugProblem(s, APP_SLUG_LENGTH) === null, appSlug.safeParse(s).success, s);
      }
      assert.equal(suggestSlug('  Café Shop API!  '), 'cafe-shop-api');
    });

    it('formats times and durations', () => {
      const now = Date.parse('2026-11-27T12:00:00Z');
      assert.equal(ago('2026-11-27T11:58:00Z', now), '2m ago');
      assert.equal(ago(null), '—');
      assert.equal(duration(between('2026-11-27T11:58:00Z', '2026-11-27T11:59:05.5Z')), '1m 6s');
      assert.equal(duration(1500), '1.5s');
    });
  });
});
