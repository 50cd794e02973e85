// Bytes sent to an app's clients in a window. Production asks Fly's managed Prometheus
// (api.fly.io/prometheus/<org>) for the increase of the edge's bytes-out counter per app; local
// mode reads the router's cumulative counter from the local runtime and records the increase
// since the last reading (usage_bandwidth_counters), in the same transaction as the record.
import type { Knex } from 'knex';
import type { FlyClient } from '../providers/fly/client.ts';
import { authorizationHeader } from '../providers/fly/client.ts';
import { insertUsage, type UsageRow } from './ledger.ts';
import { splitAtUtcDays, spread } from './machine-time.ts';

export interface AppRef {
  flyApp: string;
  appId: string | null;
  teamId: string;
}

export interface BandwidthSource {
  /** Records the bandwidth of `apps` in the windows (contiguous, [start, end) in ms); returns the teams written for. */
  record(knex: Knex, apps: AppRef[], windows: [number, number][]): Promise<string[]>;
}

const rowsFor = (app: AppRef, bytes: number, windows: [number, number][]): UsageRow[] =>
  spread(bytes, windows)
    .map((quantity, i) => ({
      teamId: app.teamId,
      appId: app.appId,
      machineId: null,
      meter: 'bandwidth' as const,
      windowStart: new Date(windows[i][0]),
      windowEnd: new Date(windows[i][1]),
      quantity,
    }))
    .filter((r) => r.quantity > 0);

/** The local router's counter (GET /v1/apps/{app}/local/bandwidth on the local runtime). */
export function localBandwidth(client: FlyClient): BandwidthSource {
  return {
    async record(knex, apps, windows) {
      const teams = new Set<string>();
      for (const app of apps) {
        const counter = await client.localBytesOut(app.flyApp);
        await knex.transaction(async (trx) => {
          const last = (await trx('usageBandwidthCounters').where({ flyApp: app.flyApp }).forUpdate().first()) as { bytesOut: number } | undefined;
          // A counter smaller than our last reading was reset (a new local runtime state): all of it is new.
          const bytes = last && counter >= last.bytesOut ? counter - last.bytesOut : counter;
          const rows = rowsFor(app, bytes, windows);
          // A window already recorded (a retried poll) leaves the counter where it was: its bytes are in the record.
          if (rows.length > 0 && (await insertUsage(trx, rows)).inserted === 0) return;
          await trx('usageBandwidthCounters').insert({ flyApp: app.flyApp, bytesOut: counter, readAt: new Date() }).onConflict('fly_app').merge();
          if (rows.length > 0) teams.add(app.teamId);
        });
      }
      return [...teams];
    },
  };
}

/** Fly's edge counter of bytes sent to clients, per app (Fly's built-in metrics). */
export const FLY_BYTES_OUT_METRIC = 'fly_edge_data_out';

interface PromVector {
  status: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
  error?: string;
}

/**
 * How far behind the poll the bandwidth windows run. Samples reach Fly's Prometheus some time after
 * the moment they describe (scrape interval plus ingestion), so a window ending "now" is queried
 * before its last samples exist, and a counter query never looks at that window again. Querying
 * each poll's window shifted this far into the past counts every byte once, just later.
 */
export const BANDWIDTH_LAG_MS = 2 * 60_000;

/** The poll's windows (contiguous) moved `lagMs` into the past, cut again at UTC midnights. */
export function laggedWindows(windows: [number, number][], lagMs: number): [number, number][] {
  if (windows.length === 0) return [];
  return splitAtUtcDays(windows[0][0] - lagMs, windows[windows.length - 1][1] - lagMs);
}

/**
 * Fly's Prometheus: one instant query per window, `sum by (app) (increase(counter[Ns]))` evaluated
 * at the window's end, for every app of the org at once; windows run BANDWIDTH_LAG_MS behind.
 */
export function flyPrometheusBandwidth(options: { baseUrl: string; org: string; token: string; fetch?: typeof fetch; lagMs?: number }): BandwidthSource {
  const doFetch = options.fetch ?? fetch;
  async function bytesByApp(start: number, end: number): Promise<Map<string, number>> {
    const seconds = Math.max(1, Math.round((end - start) / 1000));
    const url = new URL(`${options.baseUrl.replace(/\/+$/, '')}/prometheus/${encodeURIComponent(options.org)}/api/v1/query`);
    url.searchParams.set('query', `sum by (app) (increase(${FLY_BYTES_OUT_METRIC}[${seconds}s]))`);
    url.searchParams.set('time', String(end / 1000));
    const res = await doFetch(url, {
      headers: { authorization: authorizationHeader(options.token), accept: 'application/json' },
      signal: AbortSignal.timeout(30_000),
    });
    const body = (await res.json().catch(() => ({}))) as PromVector;
    if (!res.ok || body.status !== 'success' || !body.data) throw new Error(`Fly metrics query failed (${res.status}): ${body.error ?? res.statusText}`);
    return new Map(body.data.result.map((r) => [r.metric.app, Math.round(Number(r.value[1]))]));
  }
  return {
    async record(knex, apps, pollWindows) {
      const rows: UsageRow[] = [];
      for (const [start, end] of laggedWindows(pollWindows, options.lagMs ?? BANDWIDTH_LAG_MS)) {
        const bytes = await bytesByApp(start, end);
        for (const app of apps) rows.push(...rowsFor(app, bytes.get(app.flyApp) ?? 0, [[start, end]]));
      }
      const written = await insertUsage(knex, rows);
      return written.teamIds;
    },
  };
}
