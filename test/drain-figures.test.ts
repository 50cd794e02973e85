// The drain sentence the deployment log and page show, and the production source: Fly's metrics
// give connections before and after a drain, never per-client reconnects, and say so.
import assert from 'node:assert/strict';
import { describeDrain, type DrainFigures } from '../backend/lib/drain-summary.ts';
import { flyMetricsDrain, percentile } from '../backend/releases/drain.ts';
import { CloseFrameWatch } from '../local/ws-close-watch.ts';

const router = (extra: Partial<DrainFigures>): DrainFigures => ({
  source: 'router',
  connections: 200,
  cut: 0,
  reconnected: 200,
  reconnectP50Ms: 400,
  reconnectP95Ms: 550,
  reconnectMaxMs: 612,
  windowS: 10,
  connectionsBefore: null,
  connectionsAfter: null,
  ...extra,
});

describe('drain figures', () => {
  it('says how many connections drained and how fast they came back, from the router', () => {
    assert.equal(describeDrain(router({})), '200 connections drained, all reconnected in 0.6 s');
    assert.equal(describeDrain(router({ connections: 1, reconnected: 1 })), '1 connection drained, reconnected in 0.6 s');
    assert.equal(describeDrain(router({ reconnected: 190 })), '200 connections drained, 190 reconnected within 10 s (p95 0.6 s); 10 did not come back');
    assert.equal(
      describeDrain(router({ reconnected: 0, reconnectP95Ms: null, reconnectMaxMs: null })),
      '200 connections drained, none reconnected within 10 s',
    );
    assert.equal(describeDrain(router({ connections: 0, reconnected: 0 })), 'No WebSocket connections were open on the old release');
    assert.equal(describeDrain(router({ cut: 200 })), '200 connections cut without a WebSocket close (the app did not drain them), all reconnected in 0.6 s');
    assert.equal(describeDrain(router({ cut: 3 })), '200 connections drained (3 cut without a WebSocket close), all reconnected in 0.6 s');
    assert.deepEqual([percentile([], 95), percentile([5], 95), percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95)], [null, 5, 10]);
  });

  it("reads connections before and after from Fly's fly_app_concurrency, and leaves reconnects unmeasured", async () => {
    const queries: URL[] = [];
    const fake = (async (input: URL | string) => {
      const url = new URL(String(input));
      queries.push(url);
      const q = url.searchParams.get('query') ?? '';
      const value = q.includes('old1|old2') ? '200' : '198';
      return new Response(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [0, value] }] } }), { status: 200 });
    }) as typeof fetch;
    const source = flyMetricsDrain({ baseUrl: 'https://api.fly.test', org: 'acme', token: 'fm2_secret', fetch: fake });
    const startedAt = Date.now() - 20_000;
    const d = await source.measure({ flyApp: 'rhone-web-1', drained: ['old1', 'old2'], serving: ['new1'], startedAt });
    assert.equal(queries[0].pathname, '/prometheus/acme/api/v1/query');
    assert.equal(queries[0].searchParams.get('query'), 'sum(max_over_time(fly_app_concurrency{app="rhone-web-1",instance=~"old1|old2"}[60s]))');
    assert.equal(Number(queries[0].searchParams.get('time')), startedAt / 1000);
    assert.match(queries[1].searchParams.get('query') ?? '', /instance=~"new1"/);
    assert.deepEqual(
      [d.source, d.connectionsBefore, d.connectionsAfter, d.connections, d.reconnected, d.reconnectP95Ms],
      ['fly-metrics', 200, 198, null, null, null],
    );
    assert.match(
      describeDrain(d),
      /^Fly's metrics: 200 connections on the old release before the drain, 198 on the new one after it \(Fly counts connections, not clients: per-client reconnects and their times are not measured on Fly\)$/,
    );
  });

  it('stores no number when Fly has no samples, and says so', async () => {
    const empty = (async () =>
      new Response(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [] } }), { status: 200 })) as typeof fetch;
    const d = await flyMetricsDrain({ baseUrl: 'https://api.fly.test', org: 'acme', token: 't', fetch: empty }).measure({
      flyApp: 'a',
      drained: ['x'],
      serving: ['y'],
      startedAt: Date.now(),
    });
    assert.equal(d.connectionsBefore, null);
    assert.equal(d.connectionsAfter, null);
    assert.match(describeDrain(d), /^Fly's metrics had no connection figures/);
    const failing = (async () => new Response(JSON.stringify({ status: 'error', error: 'bad query' }), { status: 422 })) as typeof fetch;
    await assert.rejects(
      flyMetricsDrain({ baseUrl: 'https://api.fly.test', org: 'acme', token: 't', fetch: failing }).measure({
        flyApp: 'a',
        drained: ['x'],
        serving: ['y'],
        startedAt: Date.now(),
      }),
      /Fly metrics query failed \(422\): bad query/,
    );
  });

  it("the router's close watch finds the first close frame after the 101 head, however the bytes are split", () => {
    const head = Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n');
    const text = Buffer.concat([Buffer.from([0x81, 126, 0x01, 0x2c]), Buffer.alloc(300, 0x88)]); // 300 bytes of 0x88: a payload, not a close
    const close = Buffer.from([0x88, 0x02, 0x03, 0xf4]);
    const stream = Buffer.concat([head, text, close]);
    for (const size of [1, 3, 7, stream.length]) {
      const watch = new CloseFrameWatch({ afterHttpHead: true });
      const hits: number[] = [];
      for (let i = 0; i < stream.length; i += size) if (watch.feed(stream.subarray(i, i + size))) hits.push(i);
      assert.equal(hits.length, 1, `chunks of ${size}`);
      assert.ok(hits[0] + size > head.length + text.length, `found inside the payload with chunks of ${size}`);
    }
    assert.equal(new CloseFrameWatch({ afterHttpHead: true }).feed(Buffer.concat([head, text])), false);
  });
});
