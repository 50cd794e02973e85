// Drain figures for a release's old machines, read once the release is done: how many WebSocket
// connections they closed and how many of those clients came back to the new release.
//
// Locally the router counts every connection (GET /v1/apps/{app}/local/connections), so the
// figures are exact. On Fly the only source is the managed Prometheus, whose fly_app_concurrency
// gauge (per machine: label `instance`) counts connections, not clients: it gives the old
// machines' connections before the drain and the new ones' after it, never who reconnected or how
// fast, so those fields stay null rather than a guess.
import type { DrainFigures } from '../lib/drain-summary.ts';
import type { FlyClient } from '../providers/fly/client.ts';
import { authorizationHeader } from '../providers/fly/client.ts';

export interface DrainWindow {
  flyApp: string;
  /** The old machines, stopped by the release. */
  drained: string[];
  /** The new machines, serving now. */
  serving: string[];
  /** Just before the old machines were sent SIGTERM (ms since the epoch). */
  startedAt: number;
  signal?: AbortSignal;
}

export interface DrainSource {
  measure(window: DrainWindow): Promise<DrainFigures>;
}

/** Nearest-rank percentile of ascending values; null for none. */
export function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

const ROUTER_POLL_MS = 200;
/** After the reconnect window, how long the router may still take to see the last connections end. */
const ROUTER_GRACE_MS = 5_000;

/**
 * The local router's count. Waits until it is settled: every drained client has come back or its
 * reconnect window (10 s) has passed, which is ~1–3 s after the release for a Vango app.
 */
export function routerDrain(client: FlyClient): DrainSource {
  return {
    async measure(w) {
      const started = Date.now();
      for (;;) {
        const r = await client.localConnections(w.flyApp, w.drained, w.startedAt);
        if (r.settled || w.signal?.aborted || Date.now() - started > r.window_ms + ROUTER_GRACE_MS) {
          return {
            source: 'router',
            connections: r.drained,
            cut: r.cut,
            reconnected: r.reconnected,
            reconnectP50Ms: percentile(r.reconnect_ms, 50),
            reconnectP95Ms: percentile(r.reconnect_ms, 95),
            reconnectMaxMs: percentile(r.reconnect_ms, 100),
            windowS: Math.round(r.window_ms / 1000),
            connectionsBefore: null,
            connectionsAfter: null,
          };
        }
        await new Promise((resolve) => setTimeout(resolve, ROUTER_POLL_MS));
      }
    },
  };
}

/** Fly's gauge of concurrent connections per machine (monitoring/metrics.html.md). */
export const FLY_CONCURRENCY_METRIC = 'fly_app_concurrency';
/** How far before the drain to look for the old machines' peak. */
const BEFORE_S = 60;

interface PromVector {
  status: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
  error?: string;
}

const MACHINE_ID = /^[0-9a-z]+$/;
const quoted = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/** Fly's managed Prometheus, queried as backend/billing/bandwidth.ts does for bandwidth. */
export function flyMetricsDrain(options: { baseUrl: string; org: string; token: string; fetch?: typeof fetch }): DrainSource {
  const doFetch = options.fetch ?? fetch;
  /** sum over the machines of each one's peak in the `seconds` before `at`; null when Fly has no samples. */
  async function peak(app: string, machines: string[], seconds: number, at: number): Promise<number | null> {
    const ids = machines.filter((id) => MACHINE_ID.test(id));
    if (ids.length === 0) return null;
    const url = new URL(`${options.baseUrl.replace(/\/+$/, '')}/prometheus/${encodeURIComponent(options.org)}/api/v1/query`);
    url.searchParams.set(
      'query',
      `sum(max_over_time(${FLY_CONCURRENCY_METRIC}{app=${quoted(app)},instance=~${quoted(ids.join('|'))}}[${Math.max(1, Math.round(seconds))}s]))`,
    );
    url.searchParams.set('time', String(at / 1000));
    const res = await doFetch(url, {
      headers: { authorization: authorizationHeader(options.token), accept: 'application/json' },
      signal: AbortSignal.timeout(30_000),
    });
    const body = (await res.json().catch(() => ({}))) as PromVector;
    if (!res.ok || body.status !== 'success' || !body.data) throw new Error(`Fly metrics query failed (${res.status}): ${body.error ?? res.statusText}`);
    const value = body.data.result[0]?.value[1];
    return value === undefined ? null : Math.round(Number(value));
  }
  return {
    async measure(w) {
      const now = Date.now();
      const before = await peak(w.flyApp, w.drained, BEFORE_S, w.startedAt);
      const after = await peak(w.flyApp, w.serving, Math.max(BEFORE_S, (now - w.startedAt) / 1000), now);
      return {
        source: 'fly-metrics',
        connections: null,
        cut: null,
        reconnected: null,
        reconnectP50Ms: null,
        reconnectP95Ms: null,
        reconnectMaxMs: null,
        windowS: Math.max(BEFORE_S, Math.round((now - w.startedAt) / 1000)),
        connectionsBefore: before,
        connectionsAfter: after,
      };
    },
  };
}
