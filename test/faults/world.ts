// What every fault case starts from: a local runtime, an api, worker processes started the way
// production starts them (`jobs/worker.ts`, each its own process, so a SIGKILL is a real one), a
// git repository of examples/hello-node and an app "web" deploying it. A Redis subscriber sees
// every status change the moment it is published, so a fault can land at an exact point of a
// deployment (inside a stage) without polling.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { getConfig, type Config } from '../../backend/config.ts';
import { db } from '../../backend/db.ts';
import { App, Deployment } from '../../backend/models/index.ts';
import { startLocalRuntime, type LocalRuntime } from '../../local/main.ts';
import { signedIn, startTestServer, type Client, type TestServer } from '../http.ts';
import { until } from '../local-helpers.ts';
import { TestRepo } from '../support/git-repo.ts';
import { get } from '../support/load.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HELLO = path.join(ROOT, 'examples/hello-node');

/**
 * Job locks of the workers these tests start: a killed worker's job is taken over after about
 * this long plus one stalled check (lockMs / 3). Production uses 15 s locks with 5 s stalled
 * checks (jobs/worker.ts LOCK_MS), so there a takeover takes about 20 s instead of about 3 s.
 */
export const TEST_LOCK_MS = 2000;

export const STAGE_STATUSES = { clone: 'cloning', analyze: 'analyzing', build: 'building', deploy: 'deploying' } as const;
export type StageName = keyof typeof STAGE_STATUSES;

export interface WorkerSettings {
  /** Instead of the test database (e.g. through a TCP proxy). */
  databaseUrl?: string;
  /** Instead of the test Redis (e.g. through a TCP proxy). */
  redisUrl?: string;
}

export interface Runtime {
  machinesUrl: string;
  routerUrl: string;
  token: string;
}

export function workerEnv(
  config: Config,
  dataDir: string,
  runtime: { machinesUrl: string; routerUrl: string },
  settings: WorkerSettings = {},
): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: settings.databaseUrl ?? config.databaseUrl,
    REDIS_URL: settings.redisUrl ?? config.redisUrl,
    RHONE_DATA_DIR: dataDir,
    RHONE_MACHINES_PORT: new URL(runtime.machinesUrl).port,
    RHONE_ROUTER_PORT: new URL(runtime.routerUrl).port,
    RHONE_SESSION_SECRET: config.sessionSecret,
    RHONE_ENCRYPTION_KEYS: config.encryptionKeys.map((k) => `${k.id}:${k.key.toString('base64')}`).join(','),
    LOG_LEVEL: process.env.FAULTS_LOG_LEVEL ?? 'silent',
  };
}

type Armed = { status: string; id?: string; action: (deploymentId: string) => void };

export class FaultWorld {
  readonly dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-faults-'));
  readonly config = getConfig();
  readonly workers: ChildProcess[] = [];
  readonly children: ChildProcess[] = [];
  local!: LocalRuntime;
  runtime!: Runtime;
  server!: TestServer;
  ada!: Client;
  repo!: TestRepo;
  /** When each deployment first reached each status (`${id}:${status}` → ms). */
  readonly seen = new Map<string, number>();
  private armed: Armed[] = [];
  private subscriber!: Redis;

  /** Starts everything but workers; `inProcessRuntime: false` leaves the runtime to the test. */
  async start({ inProcessRuntime = true }: { inProcessRuntime?: boolean } = {}): Promise<this> {
    this.subscriber = new Redis(this.config.redisUrl);
    this.subscriber.on('pmessage', (_pattern: string, channel: string, message: string) => this.onEvents(channel, message));
    await this.subscriber.psubscribe('deploy:*:events');
    if (inProcessRuntime) {
      this.local = await startLocalRuntime({ dataDir: this.dataDir, machinesPort: 0, routerPort: 0 });
      this.runtime = this.local;
    }
    this.server = await startTestServer({ config: { ...this.config, dataDir: this.dataDir }, log: pino({ level: process.env.FAULTS_LOG_LEVEL ?? 'silent' }) });
    this.ada = await signedIn(this.server.url, 'ada');
    this.repo = new TestRepo(HELLO);
    this.repo.commit('v1');
    return this;
  }

  async createApp(slug = 'web'): Promise<void> {
    const res = await this.ada.post('/api/teams/ada/apps', { name: slug, slug, source: { type: 'git', url: this.repo.url, branch: 'main' } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
  }

  startWorker(settings: WorkerSettings = {}): ChildProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', 'jobs/worker.ts', `--lock-ms=${TEST_LOCK_MS}`], {
      cwd: ROOT,
      env: workerEnv(this.config, this.dataDir, this.runtime, settings),
      stdio: ['ignore', 'ignore', process.env.FAULTS_LOG_LEVEL ? 'inherit' : 'ignore'],
    });
    this.workers.push(child);
    return child;
  }

  async deploy(slug = 'web', client = this.ada): Promise<string> {
    const res = await client.post(`/api/apps/${slug}/deploy`, {});
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return res.body.id as string;
  }

  /** Runs `action` synchronously when a deployment (any, or `id`) first publishes `status`. */
  onStatus(status: string, action: (deploymentId: string) => void, id?: string): void {
    this.armed.push({ status, id, action });
  }

  private onEvents(channel: string, message: string): void {
    const id = channel.split(':')[1];
    const { events } = JSON.parse(message) as { events: { type: string; data: { status?: string } }[] };
    for (const e of events) {
      if (e.type !== 'status' || !e.data.status) continue;
      const key = `${id}:${e.data.status}`;
      if (!this.seen.has(key)) this.seen.set(key, Date.now());
      const fire = this.armed.filter((a) => a.status === e.data.status && (!a.id || a.id === id));
      this.armed = this.armed.filter((a) => !fire.includes(a));
      for (const a of fire) a.action(id);
    }
  }

  /** Waits until the deployment is in `status`; fails at once if it ends any other way. */
  async waitFor(id: string, status: string, timeoutMs = 60_000): Promise<Deployment> {
    return until(
      `deployment ${id} to be ${status}`,
      async () => {
        const d = await Deployment.query(db()).findById(id).throwIfNotFound();
        if (d.status === status) return d;
        if (['failed', 'canceled', 'superseded'].includes(d.status)) throw new Error(`deployment ${d.status}: ${d.reason}`);
        return undefined;
      },
      timeoutMs,
    );
  }

  async flyAppName(slug = 'web'): Promise<string> {
    return (await App.query(db()).findOne({ slug }).throwIfNotFound()).flyAppName;
  }

  async machines(slug = 'web', query = ''): Promise<{ id: string; state: string }[]> {
    const res = await fetch(`${this.runtime.machinesUrl}/v1/apps/${await this.flyAppName(slug)}/machines${query}`, {
      headers: { authorization: `Bearer ${this.runtime.token}` },
    });
    assert.equal(res.status, 200);
    return (await res.json()) as { id: string; state: string }[];
  }

  /** Asserts the app has exactly one machine, started: no twin, no leftover. */
  async assertOneMachine(slug = 'web'): Promise<void> {
    const machines = (await this.machines(slug)).filter((m) => m.state !== 'destroyed');
    assert.deepEqual(
      machines.map((m) => m.state),
      ['started'],
      `one started machine, got ${JSON.stringify(machines)}`,
    );
  }

  async release(slug = 'web'): Promise<{ release: string; pid: number }> {
    const res = await get(this.runtime.routerUrl, `${slug}.localhost`, '/release');
    assert.equal(res.status, 200, res.body);
    return JSON.parse(res.body) as { release: string; pid: number };
  }

  /** Commits a v2 whose build runs `script` (hello-node's own build is a no-op). */
  commitBuild(script: string, message = 'next'): void {
    const pkg = JSON.parse(this.repo.git('show', 'HEAD:package.json')) as { scripts?: Record<string, string> };
    pkg.scripts = { ...pkg.scripts, build: script };
    this.repo.write('package.json', JSON.stringify(pkg)).commit(message);
  }

  /** Every event seq of the deployment as stored. */
  async storedSeqs(id: string): Promise<number[]> {
    return (await db()('deployment_events').where({ deploymentId: id }).orderBy('seq').pluck('seq')) as number[];
  }

  async close(): Promise<void> {
    for (const w of [...this.workers.splice(0), ...this.children.splice(0)]) w.kill('SIGKILL');
    this.armed = [];
    this.subscriber?.disconnect();
    await this.server?.close();
    await this.local?.close();
  }
}

/** The pids of `pid`'s descendants (Linux /proc). */
export function descendants(pid: number): { pid: number; comm: string }[] {
  const out: { pid: number; comm: string }[] = [];
  const walk = (p: number) => {
    let kids: number[] = [];
    try {
      for (const task of readdirSync(`/proc/${p}/task`)) {
        kids.push(...readFileSync(`/proc/${p}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
      }
    } catch {
      kids = [];
    }
    for (const k of kids) {
      let comm = '';
      try {
        comm = readFileSync(`/proc/${k}/comm`, 'utf8').trim();
      } catch {
        // gone meanwhile
      }
      out.push({ pid: k, comm });
      walk(k);
    }
  };
  walk(pid);
  return out;
}

/** Prints a measured figure under the test's title (the report reads them). */
export function figure(text: string): void {
  process.stdout.write(`      figure: ${text}\n`);
}
