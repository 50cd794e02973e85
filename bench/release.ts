// `npm run bench:release`: the control plane's own overhead in a blue/green release on the local
// runtime: the total time of a release minus the time that belongs to the app (from its new
// machine being started to its health check passing, and from SIGTERM to its old machine having
// stopped). Median and p95 over 20 releases of examples/hello-node, one machine each, with the
// timing local mode uses (LOCAL_TIMING). Goal: overhead under 1.5 s.
//
// The app's part is read from the release's own log lines, stamped as they are written; polling
// latency (up to LOCAL_TIMING.pollMs) is counted as the app's, so the figure is the API calls,
// process spawning and bookkeeping. It is a benchmark, not a test: it exits 0 whatever the figures.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalRuntime } from '../local/main.ts';
import { importImage } from '../local/images.ts';
import { FlyClient } from '../backend/providers/fly/client.ts';
import { flyAppNameForSlug } from '../backend/providers/fly/names.ts';
import { LOCAL_TIMING, release, type ReleaseInput } from '../backend/releases/blue-green.ts';

const RUNS = Number(process.env.BENCH_RUNS) || 20;
const GOAL_MS = 1500;
const hello = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../examples/hello-node');

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-bench-release-'));
const local = await startLocalRuntime({ dataDir, machinesPort: 0, routerPort: 0 });
const client = new FlyClient({ baseUrl: local.machinesUrl, token: local.token });
for (const tag of ['a', 'b']) await importImage(dataDir, 'bench', tag, hello, { cmd: [process.execPath, 'server.js'] });

function input(n: number): ReleaseInput {
  const tag = n % 2 === 0 ? 'a' : 'b';
  return {
    flyApp: flyAppNameForSlug('bench'),
    appId: 'bench-app',
    deploymentId: `bench-${n}`,
    releaseVersion: n,
    image: `rhone-local/bench:${tag}`,
    settings: { region: 'local', machineSize: 'shared-cpu-1x', internalPort: 8080, healthCheckPath: '/health', instanceCount: 1 },
    secrets: { SECRET_TOKEN: 'not-logged' },
    env: { RHONE_RELEASE: tag },
  };
}

interface Run {
  total: number;
  app: number;
  overhead: number;
}

async function measure(n: number): Promise<Run> {
  const stamps: { at: number; line: string }[] = [];
  const started = performance.now();
  await release(input(n), { client, org: 'personal', timing: LOCAL_TIMING, log: (line) => stamps.push({ at: performance.now(), line }) });
  const total = performance.now() - started;
  const at = (re: RegExp, last = false) => {
    const hits = stamps.filter((s) => re.test(s.line));
    const hit = last ? hits[hits.length - 1] : hits[0];
    if (!hit) throw new Error(`no log line matching ${re}:\n${stamps.map((s) => s.line).join('\n')}`);
    return hit.at;
  };
  let app = at(/is healthy$/, true) - at(/started; waiting for GET/);
  if (stamps.some((s) => /^Stopping \d+ old machine/.test(s.line))) app += at(/^Old machine .* stopped$/, true) - at(/^Stopping \d+ old machine/);
  return { total, app, overhead: total - app };
}

const pct = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};
const ms = (x: number) => `${Math.round(x)} ms`.padStart(9);

try {
  await release(input(0), { client, org: 'personal', timing: LOCAL_TIMING }); // warm-up: the app exists, v1 serves
  const runs: Run[] = [];
  for (let n = 1; n <= RUNS; n++) runs.push(await measure(n));
  console.log(`blue/green releases on the local runtime: ${RUNS} runs, 1 machine each, examples/hello-node`);
  console.log(`${'figure'.padEnd(34)}${'median'.padStart(9)}${'p95'.padStart(9)}`);
  for (const [label, key] of [
    ['total release time', 'total'],
    ["app's boot + checks + drain", 'app'],
    ['control-plane overhead', 'overhead'],
  ] as const) {
    const xs = runs.map((r) => r[key]);
    console.log(`${label.padEnd(34)}${ms(pct(xs, 50))}${ms(pct(xs, 95))}`);
  }
  const p50 = pct(
    runs.map((r) => r.overhead),
    50,
  );
  const p95 = pct(
    runs.map((r) => r.overhead),
    95,
  );
  console.log(`goal: overhead under ${GOAL_MS} ms: ${p95 < GOAL_MS ? 'met' : p50 < GOAL_MS ? 'met at the median, not at p95' : 'NOT met'}`);
} finally {
  await local.close();
  rmSync(dataDir, { recursive: true, force: true });
}
