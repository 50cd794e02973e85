// What the local router knows about upgraded (WebSocket) connections, per machine, for the drain
// figures a release stores on its deployment: GET /v1/apps/{app}/local/connections.
//
// A connection is "drained" when the machine closed it: its app sent the first WebSocket close
// frame (the router watches frame headers: local/ws-close-watch.ts), or, when no close frame was
// sent at all (a crash, a reset), the machine's side ended the TCP connection first. The router
// does not read the frames' payloads, so it cannot tell whether the app sent its reconnect message
// first (bench/drain.ts measures that from the clients). A drained client "reconnected" when a
// new upgrade to the same app, on a machine outside the drained set, from the same client
// address, got its 101 within the reconnect window after the close. Each new upgrade answers for
// one drained connection at most, matched in order of time (the earliest close takes the earliest
// reconnect), so the count never exceeds the connections drained.

export const RECONNECT_WINDOW_MS = 10_000;
/** Upgrades remembered per app; the oldest go first. A drain is read seconds after it happens. */
const KEEP_PER_APP = 20_000;

export type ClosedBy = 'app' | 'client';

export interface Connection {
  machine: string;
  /** The client's address as the router saw it. */
  client: string;
  /** When the machine answered 101 (ms since the epoch). */
  openedAt: number;
  closedAt?: number;
  closedBy?: ClosedBy;
  /** The side that sent the first WebSocket close frame, if one did. */
  closeFrameBy?: ClosedBy;
}

export interface ConnectionReport {
  /** Connections of these machines still open. */
  open: number;
  /** Connections closed since `since` that the machine ended first. */
  drained: number;
  /** Of those, the ones that ended without any WebSocket close frame (a crash, a kill): cut, not drained. */
  cut: number;
  /** Connections closed since `since` that the client ended first. */
  closedByClient: number;
  /** Drained connections whose client came back within the window (≤ drained). */
  reconnected: number;
  /** For each reconnected one: ms from its close to the new 101, ascending. */
  reconnectMs: number[];
  windowMs: number;
  /** Nothing left to wait for: none open, and every drained one reconnected or past its window. */
  settled: boolean;
}

export class ConnectionLedger {
  private readonly byApp = new Map<string, Connection[]>();

  /** A connection the machine accepted (101); call closed() once either side ends it. */
  opened(app: string, machine: string, client: string, at = Date.now()): Connection {
    const list = this.byApp.get(app) ?? [];
    if (!this.byApp.has(app)) this.byApp.set(app, list);
    const conn: Connection = { machine, client, openedAt: at };
    list.push(conn);
    if (list.length > KEEP_PER_APP) list.splice(0, list.length - KEEP_PER_APP);
    return conn;
  }

  /** A close frame went by from `by`; the first one says who closed the WebSocket. */
  closeFrame(conn: Connection, by: ClosedBy): void {
    conn.closeFrameBy ??= by;
  }

  /** The connection ended (`by`: the side whose TCP end came first); later calls change nothing. */
  closed(conn: Connection, by: ClosedBy, at = Date.now()): void {
    if (conn.closedAt !== undefined) return;
    conn.closedAt = at;
    conn.closedBy = conn.closeFrameBy ?? by;
  }

  report(app: string, machines: string[], options: { since?: number; windowMs?: number; now?: number } = {}): ConnectionReport {
    const since = options.since ?? 0;
    const windowMs = options.windowMs ?? RECONNECT_WINDOW_MS;
    const now = options.now ?? Date.now();
    const drainedSet = new Set(machines);
    const all = this.byApp.get(app) ?? [];
    const mine = all.filter((c) => drainedSet.has(c.machine));
    const recent = mine.filter((c) => c.closedAt !== undefined && c.closedAt >= since);
    const drained = recent.filter((c) => c.closedBy === 'app').sort((a, b) => (a.closedAt as number) - (b.closedAt as number));
    const elsewhere = all.filter((c) => !drainedSet.has(c.machine) && c.openedAt >= since).sort((a, b) => a.openedAt - b.openedAt);

    const used = new Set<Connection>();
    const reconnectMs: number[] = [];
    let waiting = false;
    for (const gone of drained) {
      const closedAt = gone.closedAt as number;
      const back = elsewhere.find((c) => !used.has(c) && c.client === gone.client && c.openedAt >= closedAt && c.openedAt - closedAt <= windowMs);
      if (back) {
        used.add(back);
        reconnectMs.push(back.openedAt - closedAt);
      } else if (now - closedAt <= windowMs) {
        waiting = true;
      }
    }
    const open = mine.filter((c) => c.closedAt === undefined).length;
    return {
      open,
      drained: drained.length,
      cut: drained.filter((c) => c.closeFrameBy === undefined).length,
      closedByClient: recent.length - drained.length,
      reconnected: reconnectMs.length,
      reconnectMs: reconnectMs.sort((a, b) => a - b),
      windowMs,
      settled: open === 0 && !waiting,
    };
  }
}
