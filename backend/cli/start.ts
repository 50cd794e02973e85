// `npm start`: check Postgres and Redis, create and migrate the database, then run the api,
// worker and scheduler together (each its own process, as in production) and print the URL.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { configOrExit } from '../config.ts';
import { preflight } from '../lib/preflight.ts';
import { logLineFormatter } from '../lib/log-format.ts';
import { prepareDatabase } from './migrate.ts';
import { ensureFrontendBuilt } from './frontend.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const config = configOrExit();
// Local mode runs its own stand-in for Fly: the Machines API and the router, as one process.
const PROCESSES = [
  ...(config.isLocal ? [{ name: 'machines', entry: 'local/main.ts' }] : []),
  { name: 'api', entry: 'backend/server.ts' },
  { name: 'worker', entry: 'jobs/worker.ts' },
  { name: 'scheduler', entry: 'jobs/scheduler.ts' },
];

if (config.generatedSecrets.length > 0) {
  console.log(
    `rhone: local mode is using development secrets for ${config.generatedSecrets.join(' and ')}, kept in ${path.join(config.dataDir, 'dev-secrets.json')}. Set them yourself for anything but local use.`,
  );
}
const problem = await preflight(config);
if (problem) {
  console.error(problem);
  process.exit(1);
}
await prepareDatabase(config.databaseUrl);
try {
  await ensureFrontendBuilt();
} catch (err) {
  console.error(
    `rhone: the dashboard could not be built: ${(err as Error).message}\nThe API still starts; fix the error above and run npm start again to get the dashboard.`,
  );
}

const children = new Map<string, ChildProcess>();
let stopping = false;

// The processes write JSON logs; a person at a terminal reads them as short lines instead.
const formatFor = (out: NodeJS.WriteStream) => logLineFormatter({ tty: out.isTTY === true });

function prefixed(name: string, stream: NodeJS.ReadableStream, out: NodeJS.WriteStream) {
  const format = formatFor(out);
  let buffered = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) out.write(`[${name}] ${format(line)}\n`);
  });
}

function stopAll(code: number) {
  if (stopping) return;
  stopping = true;
  for (const child of children.values()) child.kill('SIGTERM');
  // Apps get their 30 s to drain when the local runtime stops them; then we stop waiting.
  const force = setTimeout(() => {
    for (const child of children.values()) child.kill('SIGKILL');
    process.exit(code);
  }, 45_000);
  force.unref();
  const wait = () => (children.size === 0 ? process.exit(code) : setTimeout(wait, 50));
  wait();
}

for (const { name, entry } of PROCESSES) {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.set(name, child);
  prefixed(name, child.stdout!, process.stdout);
  prefixed(name, child.stderr!, process.stderr);
  child.on('exit', (code, signal) => {
    children.delete(name);
    if (stopping) return;
    console.error(`rhone: the ${name} process stopped (${signal ?? `exit ${code}`}); stopping the others. Its output above says why.`);
    stopAll(1);
  });
}

process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));

// Say where Rhone is once the api answers.
const deadline = Date.now() + 60_000;
for (;;) {
  try {
    const res = await fetch(`http://127.0.0.1:${config.port}/healthz`);
    if (res.ok) break;
  } catch {
    // not up yet
  }
  if (stopping) break;
  if (Date.now() > deadline) {
    console.error(`rhone: the api did not answer on port ${config.port} within 60 s; stopping.`);
    stopAll(1);
    break;
  }
  await new Promise((r) => setTimeout(r, 200));
}
if (!stopping) {
  const apps = config.isLocal ? `; apps are served at http://{slug}.${config.appsDomain}:${config.routerPort}` : '';
  console.log(`\nRhone is running in ${config.mode} mode at ${config.publicUrl}${apps}\n`);
}
