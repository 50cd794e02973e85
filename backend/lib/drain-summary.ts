// The drain figures a release stores on its deployment (deployments.drain), and the sentence the
// deployment log and the dashboard show for them. Pure: the dashboard imports it too.

export interface DrainFigures {
  /** "router": the local router counted each connection; "fly-metrics": Fly's Prometheus gauges. */
  source: 'router' | 'fly-metrics';
  /** WebSocket connections the old machines closed (router only: Fly's metrics count no clients). */
  connections: number | null;
  /** Of those, the ones that ended without a WebSocket close frame: cut, never told (router only). */
  cut: number | null;
  /** Of those, the clients that came back to the new release within `windowS` (router only). */
  reconnected: number | null;
  /** From a client's close to its new connection, over the reconnected ones (router only). */
  reconnectP50Ms: number | null;
  reconnectP95Ms: number | null;
  reconnectMaxMs: number | null;
  windowS: number;
  /** fly-metrics: the old machines' peak fly_app_concurrency in the minute before the drain. */
  connectionsBefore: number | null;
  /** fly-metrics: the new machines' peak fly_app_concurrency from the drain until it was read. */
  connectionsAfter: number | null;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** "200 connections drained, all reconnected in 0.6 s", or what is known instead. */
export function describeDrain(d: DrainFigures): string {
  if (d.source === 'fly-metrics') {
    if (d.connectionsBefore === null)
      return "Fly's metrics had no connection figures for the old release's machines; per-client reconnects are not measured on Fly";
    const after = d.connectionsAfter === null ? 'no figure yet for the new one' : `${d.connectionsAfter} on the new one after it`;
    return `Fly's metrics: ${plural(d.connectionsBefore, 'connection')} on the old release before the drain, ${after} (Fly counts connections, not clients: per-client reconnects and their times are not measured on Fly)`;
  }
  const n = d.connections ?? 0;
  const back = d.reconnected ?? 0;
  if (n === 0) return 'No WebSocket connections were open on the old release';
  const cut = d.cut ?? 0;
  const drained =
    cut === 0
      ? `${plural(n, 'connection')} drained`
      : cut === n
        ? `${plural(n, 'connection')} cut without a WebSocket close (the app did not drain them)`
        : `${plural(n, 'connection')} drained (${cut} cut without a WebSocket close)`;
  if (back === n && d.reconnectMaxMs !== null) return `${drained}, ${n === 1 ? 'reconnected' : 'all reconnected'} in ${seconds(d.reconnectMaxMs)}`;
  if (back === 0) return `${drained}, none reconnected within ${d.windowS} s`;
  const p95 = d.reconnectP95Ms === null ? '' : ` (p95 ${seconds(d.reconnectP95Ms)})`;
  return `${drained}, ${back} reconnected within ${d.windowS} s${p95}; ${n - back} did not come back`;
}
