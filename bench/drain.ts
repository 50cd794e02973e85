// `npm run bench:drain`: what a blue/green release does to a Vango app's users. examples/hello-node
// on the local runtime, 200 WebSocket clients on /_vango/ws through the router that reconnect the
// way the app's page does (1 s after a close), 50 HTTP GETs a second through the router, and 5
// redeploys alternating two images. Per release and in total: HTTP requests and failures, clients
// told to reconnect (the app's {"type":"reconnect"} message, then close 1012), clients dropped
// without notice (1006, or no message), and the time from each close to the client being
// connected to the NEW release (median, p95, max). Beside them, the router's own count (the figures
// a deployment stores: backend/releases/drain.ts), the goal, and a baseline release whose drain is
// disabled: the same app behind a bare `sh -c`, which dies of SIGTERM without passing it on, as
// Rhone's images did before backend/builder/start-command.ts.
//
// The images run `imageCommand("'<node>' server.js")`, the wrapper every image Rhone builds starts
// its app through, so the figures are those of a deployed app, signal forwarding included (the
// absolute node path: the machine's PATH need not have node).
//
// It is a benchmark, not a test: it exits 0 whatever the figures.
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { imageCommand } from '../backend/builder/start-command.ts';
import { FlyClient } from '../backend/providers/fly/client.ts';
import { flyAppNameForSlug } from '../backend/providers/fly/names.ts';
import { LOCAL_TIMING, release, type ReleaseInput } from '../backend/releases/blue-green.ts';
import { percentile, routerDrain } from '../backend/releases/drain.ts';
import { describeDrain, type DrainFigures } from '../backend/lib/drain-summary.ts';
import { importImage } from '../local/images.ts';
import { startLocalRuntime } from '../local/main.ts';
import { get } from '../test/support/load.ts';
import { VangoClients } from '../test/support/vango-clients.ts';

const CLIENTS = Number(process.env.BENCH_CLIENTS) || 200;
const RPS = Number(process.env.BENCH_RPS) || 50;
const RELEASES = Number(process.env.BENCH_RELEASES) || 5;
const BACKOFF_MS = Number(process.env.BENCH_BACKOFF_MS) || 1000;
const BASELINE = process.env.BENCH_BASELINE !== '0';
const GOAL_P95_MS = 3000;
const hello = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../examples/hello-node');
const SLUG = 'drain';
const HOST = `${SLUG}.localhost`;

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-bench-drain-'));
const local = await startLocalRuntime({ dataDir, machinesPort: 0, routerPort: 0 });
const client = new FlyClient({ baseUrl: local.machinesUrl, token: local.token });
const node = `'${process.execPath}' server.js`;
for (const tag of ['a', 'b']) await importImage(dataDir, 'drain', tag, hello, { cmd: imageCommand(node) });
// The baseline: no wrapper, a dash `sh -c` in front that does not pass SIGTERM on.
await importImage(dataDir, 'drain', 'nodrain', hello, { cmd: ['sh', '-c', `${node} & wait`] });

function input(n: number, tag: string): ReleaseInput {
  return {
    flyApp: flyAppNameForSlug(SLUG),
    appId: 'bench-drain',
    deploymentId: `drain-${n}`,
    releaseVersion: n,
    image: `rhone-local/drain:${tag}`,
    settings: { region: 'local', machineSize: 'shared-cpu-1x', internalPort: 8080, healthCheckPath: '/health', instanceCount: 1 },
    secrets: {},
    env: { RHONE_RELEASE: `#${n}` },
  };
}

/** GETs at a steady rate through the router, each outcome stamped. */
function steadyLoad(rps: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const outcomes: { at: number; ok: boolean; why?: string }[] = [];
  const timer = setInterval(() => {
    get(local.routerUrl, HOST, '/release', agent).then(
      (res) => outcomes.push({ at: Date.now(), ok: res.status === 200, why: res.status === 200 ? undefined : `${res.status} ${res.body.slice(0, 80)}` }),
      (err: Error) => outcomes.push({ at: Date.now(), ok: false, why: err.message }),
    );
  }, 1000 / rps);
  return {
    between: (from: number, to: number) => outcomes.filter((o) => o.at >= from && o.at < to),
    stop() {
      clearInterval(timer);
      agent.destroy();
    },
  };
}

interface Row {
  label: string;
  requests: number;
  failed: number;
  failures: string[];
  closes: number;
  told: number;
  dropped: number;
  reconnected: number;
  reconnectMs: number[];
  stranded: number;
  router: DrainFigures | null;
  seconds: number;
}

async function redeploy(label: string, n: number, tag: string, clients: VangoClients, load: ReturnType<typeof steadyLoad>): Promise<Row> {
  const started = Date.now();
  const result = await release(input(n, tag), { client, org: 'personal', timing: LOCAL_TIMING });
  const router =
    result.drainStartedAt === undefined
      ? null
      : await routerDrain(client).measure({
          flyApp: input(n, tag).flyApp,
          drained: result.replaced,
          serving: result.machines,
          startedAt: result.drainStartedAt,
        });
  await clients.allOn(`#${n}`, 15_000).catch(() => undefined); // the stranded are counted below
  const ended = Date.now();
  const requests = load.between(started, ended);
  const closes = clients.closesSince(started);
  const reconnects = clients.reconnectsSince(started).filter((r) => r.to === `#${n}`);
  return {
    label,
    requests: requests.length,
    failed: requests.filter((r) => !r.ok).length,
    failures: requests.filter((r) => !r.ok).map((r) => r.why ?? ''),
    closes: closes.length,
    told: closes.filter((c) => c.told && c.code === 1012).length,
    dropped: closes.filter((c) => c.code === 1006 || !c.told).length,
    reconnected: reconnects.length,
    reconnectMs: reconnects.map((r) => r.ms).sort((a, b) => a - b),
    stranded: clients.stranded(started),
    router,
    seconds: (ended - started) / 1000,
  };
}

const ms = (x: number | null) => (x === null ? '-' : `${Math.round(x)}`);
const cols = ['release', 'http', 'failed', 'told', 'dropped', 'back', 'p50 ms', 'p95 ms', 'max ms', 'router: drained', 'cut', 'back', 'p95 ms'];
const widths = [24, 7, 7, 11, 8, 11, 8, 8, 8, 16, 6, 6, 8];
const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('');

function print(row: Row): void {
  const x = row.reconnectMs;
  console.log(
    line([
      row.label,
      String(row.requests),
      String(row.failed),
      `${row.told}/${row.closes}`,
      String(row.dropped),
      `${row.reconnected}/${row.closes}`,
      ms(percentile(x, 50)),
      ms(percentile(x, 95)),
      ms(percentile(x, 100)),
      row.router ? String(row.router.connections) : '-',
      row.router ? String(row.router.cut) : '-',
      row.router ? String(row.router.reconnected) : '-',
      row.router ? ms(row.router.reconnectP95Ms) : '-',
    ]),
  );
}

const clients = new VangoClients(local.routerUrl, HOST, CLIENTS, { backoffMs: BACKOFF_MS });
const load = steadyLoad(RPS);
try {
  await release(input(1, 'a'), { client, org: 'personal', timing: LOCAL_TIMING }); // v1 serves
  clients.start();
  await clients.allOn('#1', 30_000);
  console.log(
    `hello-node on the local runtime: ${CLIENTS} WebSocket clients (reconnect ${BACKOFF_MS} ms after a close), ${RPS} GET/s, ${RELEASES} redeploys; load average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  console.log(line(cols));
  const rows: Row[] = [];
  for (let i = 1; i <= RELEASES; i++) {
    const n = i + 1;
    const row = await redeploy(`#${n} (image ${n % 2 === 0 ? 'b' : 'a'})`, n, n % 2 === 0 ? 'b' : 'a', clients, load);
    rows.push(row);
    print(row);
  }
  const all = rows.flatMap((r) => r.reconnectMs).sort((a, b) => a - b);
  const sum = (key: 'requests' | 'failed' | 'closes' | 'told' | 'dropped' | 'reconnected' | 'stranded') => rows.reduce((s, r) => s + r[key], 0);
  const routerRows = rows.map((r) => r.router).filter((r): r is DrainFigures => r !== null);
  const total: Row = {
    label: 'total',
    requests: sum('requests'),
    failed: sum('failed'),
    failures: rows.flatMap((r) => r.failures),
    closes: sum('closes'),
    told: sum('told'),
    dropped: sum('dropped'),
    reconnected: sum('reconnected'),
    reconnectMs: all,
    stranded: sum('stranded'),
    seconds: 0,
    router: {
      ...routerRows[0],
      connections: routerRows.reduce((s, r) => s + (r.connections ?? 0), 0),
      cut: routerRows.reduce((s, r) => s + (r.cut ?? 0), 0),
      reconnected: routerRows.reduce((s, r) => s + (r.reconnected ?? 0), 0),
      reconnectP95Ms: Math.max(...routerRows.map((r) => r.reconnectP95Ms ?? 0)),
    },
  };
  print(total);
  console.log(
    line([
      'goal (per release)',
      '-',
      '0',
      `${CLIENTS}/${CLIENTS}`,
      '0',
      `${CLIENTS}/${CLIENTS}`,
      '-',
      `<${GOAL_P95_MS}`,
      '-',
      String(CLIENTS),
      '0',
      String(CLIENTS),
      '-',
    ]),
  );
  console.log("(router p95 in the total row: the worst release's)");

  if (BASELINE) {
    // A release to the unwrapped image (a normal drain of a wrapped one), then the baseline: the
    // release that replaces it, whose old machine never hears SIGTERM (killed at the 30 s timeout).
    const n = RELEASES + 2;
    await redeploy(`#${n}`, n, 'nodrain', clients, load);
    const row = await redeploy(`#${n + 1} drain disabled`, n + 1, 'a', clients, load);
    console.log('\nbaseline: the same release, the old machine behind a bare `sh -c` that does not pass SIGTERM on');
    print(row);
  }

  const perRelease = (r: Row) =>
    r.failed === 0 && r.told === CLIENTS && r.dropped === 0 && r.stranded === 0 && (percentile(r.reconnectMs, 95) ?? Infinity) < GOAL_P95_MS;
  const met = rows.filter(perRelease).length;
  console.log(`\ngoal (0 failed requests, ${CLIENTS}/${CLIENTS} told, 0 dropped, p95 reconnect < ${GOAL_P95_MS} ms): met in ${met} of ${rows.length} releases`);
  if (total.failures.length > 0) console.log(`HTTP failures: ${[...new Set(total.failures)].slice(0, 5).join('; ')}`);
  if (rows[0]?.router) console.log(`deployment log line for the first redeploy: "${describeDrain(rows[0].router)}"`);
} finally {
  load.stop();
  clients.stop();
  await local.close();
  rmSync(dataDir, { recursive: true, force: true });
}
