// Helpers for the local runtime's tests: a runtime on ephemeral ports in a temp data dir, a
// Machines API caller that checks every request and answer against Fly's spec, and a router
// caller that sets the Host header (fetch will not).
import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MachineConfig } from '../backend/providers/fly/types.ts';
import { importImage } from '../local/images.ts';
import { startLocalRuntime, type LocalRuntime } from '../local/main.ts';
import { validateRequest, validateResponse } from './support/fly-spec.ts';
import { until } from './support/until.ts';

// Kept here too: most tests import until from this file.
export { until } from './support/until.ts';

export const FIXTURE_APP = path.resolve(fileURLToPath(import.meta.url), '../fixtures/local-app');
export const IMAGE = 'rhone-local/fixture:v1';

export interface Answer<T = any> {
  status: number;
  body: T;
  headers: http.IncomingHttpHeaders;
}

export function tempDataDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'rhone-local-'));
}

/** Starts a runtime and puts the fixture app in its image store as rhone-local/fixture:v1. */
export async function startRuntime(dataDir = tempDataDir()): Promise<{ local: LocalRuntime; api: FlyApi; dataDir: string }> {
  const local = await startLocalRuntime({ dataDir, machinesPort: 0, routerPort: 0 });
  await importImage(dataDir, 'fixture', 'v1', FIXTURE_APP, { cmd: [process.execPath, 'server.mjs'] });
  return { local, api: new FlyApi(local.machinesUrl, `Bearer ${local.token}`), dataDir };
}

export interface RuntimeFixture {
  local: LocalRuntime;
  api: FlyApi;
  dataDir: string;
}

/** A fresh runtime for each test of the calling describe block, closed and removed after it. */
export function useRuntime(): RuntimeFixture {
  const fixture = {} as RuntimeFixture;
  beforeEach(async () => {
    Object.assign(fixture, await startRuntime());
  });
  afterEach(async () => {
    await fixture.local.close();
    await rm(fixture.dataDir, { recursive: true, force: true });
  });
  return fixture;
}

function request(url: string, options: http.RequestOptions, body?: string): Promise<{ status: number; text: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false, ...options }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export interface CallOptions {
  params?: Record<string, string>;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  /** Some bodies Fly accepts are outside its own spec (a null secret value unsets it). */
  skipRequestValidation?: boolean;
}

/** Calls the local Machines API by the spec's path template; every answer is checked against the spec. */
export class FlyApi {
  /** token: the whole Authorization value, `Bearer ${local.token}`; '' sends none. */
  constructor(
    readonly baseUrl: string,
    readonly token: string,
  ) {}

  async call<T = any>(method: string, template: string, options: CallOptions = {}): Promise<Answer<T>> {
    const concrete = template.replace(/\{(\w+)\}/g, (_, name: string) => {
      const value = options.params?.[name];
      if (value === undefined) throw new Error(`no value for {${name}} in ${template}`);
      return encodeURIComponent(value);
    });
    const url = new URL(concrete, this.baseUrl);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.append(k, String(v));
    if (!options.skipRequestValidation) validateRequest(method, template, options.body);
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers: Record<string, string> = { ...(this.token ? { authorization: this.token } : {}), ...options.headers };
    if (payload) headers['content-type'] = 'application/json';
    const res = await request(url.href, { method, headers }, payload);
    const body = res.text && String(res.headers['content-type']).startsWith('application/json') ? JSON.parse(res.text) : res.text || undefined;
    validateResponse(method, template, res.status, body);
    return { status: res.status, body, headers: res.headers };
  }

  /** A local extension of the API (not in Fly's spec, so not checked against it). */
  async localExtension(pathname: string): Promise<any> {
    const res = await request(new URL(pathname, this.baseUrl).href, { headers: { authorization: this.token } });
    if (res.status !== 200) throw new Error(`${pathname}: ${res.status} ${res.text}`);
    return String(res.headers['content-type']).startsWith('application/json') ? JSON.parse(res.text) : res.text;
  }

  /** Creates an app (org "personal") and returns its name. */
  async createApp(name: string): Promise<string> {
    const res = await this.call('POST', '/v1/apps', { body: { name, org_slug: 'personal' } });
    if (res.status !== 201) throw new Error(`create app: ${res.status} ${JSON.stringify(res.body)}`);
    return name;
  }

  async createMachine(app: string, body: Record<string, unknown>): Promise<any> {
    const res = await this.call('POST', '/v1/apps/{app_name}/machines', { params: { app_name: app }, body });
    if (res.status !== 200) throw new Error(`create machine: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  async machine(app: string, id: string): Promise<any> {
    return (await this.call('GET', '/v1/apps/{app_name}/machines/{machine_id}', { params: { app_name: app, machine_id: id } })).body;
  }

  async wait(app: string, id: string, state: string, timeout = 10, version?: string): Promise<Answer> {
    return this.call('GET', '/v1/apps/{app_name}/machines/{machine_id}/wait', {
      params: { app_name: app, machine_id: id },
      query: { state, timeout, version },
    });
  }

  async events(app: string, id: string): Promise<any[]> {
    return (await this.call('GET', '/v1/apps/{app_name}/machines/{machine_id}/events', { params: { app_name: app, machine_id: id }, query: { limit: 50 } }))
      .body;
  }
}

/** A machine config for the fixture app with a fast HTTP check on /health. */
export function appConfig(extra: Partial<MachineConfig> & { env?: Record<string, string> } = {}): MachineConfig {
  return {
    image: IMAGE,
    restart: { policy: 'always' },
    stop_config: { signal: 'SIGTERM', timeout: '5s' },
    services: [
      {
        protocol: 'tcp',
        internal_port: 8080,
        autostop: 'off',
        ports: [{ port: 80, handlers: ['http'] }],
        checks: [{ type: 'http', method: 'GET', path: '/health', interval: '200ms', timeout: '1s', grace_period: '100ms' }],
      },
    ],
    ...extra,
  };
}

/** A request to the router with the given Host header. */
export async function viaRouter(local: LocalRuntime, host: string, pathname = '/', init: { method?: string; body?: string } = {}): Promise<Answer<string>> {
  const res = await request(`${local.routerUrl}${pathname}`, { method: init.method ?? 'GET', headers: { host } }, init.body);
  return { status: res.status, body: res.text, headers: res.headers };
}

/** Waits until the machine is started and every check passes, as a deploy does. */
export async function healthy(api: FlyApi, app: string, id: string): Promise<any> {
  await api.wait(app, id, 'started');
  return until(`machine ${id} to pass its checks`, async () => {
    const m = await api.machine(app, id);
    return m.checks?.length > 0 && m.checks.every((c: { status: string }) => c.status === 'passing') ? m : undefined;
  });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
