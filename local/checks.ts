// Health checks of a running machine, run the way Fly runs them: nothing until the grace period
// has passed, then one request every interval, each failing after its timeout. A check is
// critical until it first passes. Service checks (config.services[].checks) decide routing;
// top-level checks (config.checks) are reported but never route.
import http from 'node:http';
import net from 'node:net';
import type { CheckStatus, MachineConfig } from '../backend/providers/fly/types.ts';
import { durationOr } from './durations.ts';

const DEFAULT_INTERVAL_MS = 15_000;
const DEFAULT_TIMEOUT_MS = 2_000;
const DEFAULT_GRACE_MS = 1_000;
const OUTPUT_LIMIT = 512;

export interface CheckSpec {
  name: string;
  /** Service checks route traffic; top-level ones only inform. */
  service: boolean;
  type: 'http' | 'tcp';
  /** The port inside the "machine" (internal_port); the runner maps it to the host port. */
  port: number | undefined;
  method: string;
  path: string;
  headers: Record<string, string>;
  intervalMs: number;
  timeoutMs: number;
  graceMs: number;
}

interface RawCheck {
  type?: string;
  port?: number;
  method?: string;
  path?: string;
  interval?: string;
  timeout?: string;
  grace_period?: string;
  headers?: { name: string; values: string[] }[];
}

function toSpec(name: string, service: boolean, raw: RawCheck, fallbackPort: number | undefined): CheckSpec {
  const headers: Record<string, string> = {};
  for (const h of raw.headers ?? []) headers[h.name] = h.values.join(', ');
  return {
    name,
    service,
    type: raw.type === 'tcp' ? 'tcp' : 'http',
    port: raw.port ?? fallbackPort,
    method: (raw.method ?? 'GET').toUpperCase(),
    path: raw.path ?? '/',
    headers,
    intervalMs: Math.max(10, durationOr(raw.interval, DEFAULT_INTERVAL_MS)),
    timeoutMs: Math.max(10, durationOr(raw.timeout, DEFAULT_TIMEOUT_MS)),
    graceMs: durationOr(raw.grace_period, DEFAULT_GRACE_MS),
  };
}

/** Every check of a config, named as Fly names them ("servicecheck-00-http-8080"). */
export function checkSpecs(config: MachineConfig): CheckSpec[] {
  const specs: CheckSpec[] = [];
  let index = 0;
  for (const service of config.services ?? []) {
    for (const check of service.checks ?? []) {
      const spec = toSpec('', true, check, service.internal_port);
      spec.name = `servicecheck-${String(index++).padStart(2, '0')}-${spec.type}-${spec.port ?? 0}`;
      specs.push(spec);
    }
  }
  const topLevel = (config as { checks?: Record<string, RawCheck> }).checks ?? {};
  for (const [name, check] of Object.entries(topLevel)) specs.push(toSpec(name, false, check, undefined));
  return specs;
}

/** Checks of a machine that is not running: critical, saying why. */
export function idleStatuses(config: MachineConfig, output: string, at: string): CheckStatus[] {
  return checkSpecs(config).map((spec) => ({ name: spec.name, status: 'critical', output, updated_at: at }));
}

export class CheckRunner {
  private readonly statuses = new Map<string, CheckStatus>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly specs: CheckSpec[],
    /** Host port for an internal port (the process's PORT when the check names no service port). */
    private readonly hostPort: (internalPort: number | undefined) => number | undefined,
    private readonly onChange: () => void,
  ) {
    const now = new Date().toISOString();
    for (const spec of specs) {
      const output = spec.graceMs > 0 ? `waiting for the grace period (${spec.graceMs} ms) to end` : 'waiting for the first check';
      this.statuses.set(spec.name, { name: spec.name, status: 'critical', output, updated_at: now });
    }
  }

  start(): void {
    for (const spec of this.specs) this.schedule(spec, spec.graceMs);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  list(): CheckStatus[] {
    return [...this.statuses.values()].map((s) => ({ ...s }));
  }

  /** True when every service check passes (a machine without service checks is healthy). */
  servicesHealthy(): boolean {
    return this.specs.every((spec) => !spec.service || this.statuses.get(spec.name)?.status === 'passing');
  }

  private schedule(spec: CheckSpec, delayMs: number): void {
    if (this.stopped) return;
    const timer = setTimeout(async () => {
      this.timers.delete(timer);
      const result = await this.run(spec);
      if (this.stopped) return;
      const previous = this.statuses.get(spec.name);
      this.statuses.set(spec.name, { name: spec.name, ...result, updated_at: new Date().toISOString() });
      if (previous?.status !== result.status) this.onChange();
      this.schedule(spec, spec.intervalMs);
    }, delayMs);
    this.timers.add(timer);
  }

  private run(spec: CheckSpec): Promise<{ status: 'passing' | 'critical'; output: string }> {
    const port = this.hostPort(spec.port);
    if (!port) return Promise.resolve({ status: 'critical', output: `no port is mapped for internal port ${spec.port}` });
    return spec.type === 'tcp' ? tcpCheck(port, spec.timeoutMs) : httpCheck(port, spec);
  }
}

function httpCheck(port: number, spec: CheckSpec): Promise<{ status: 'passing' | 'critical'; output: string }> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: spec.path, method: spec.method, headers: spec.headers, timeout: spec.timeoutMs, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (body.length < OUTPUT_LIMIT) body += chunk;
        });
        res.on('end', () => {
          const code = res.statusCode ?? 0;
          const line = `${spec.method} ${spec.path}: ${code} ${res.statusMessage ?? ''}`.trim();
          const output = body ? `${line} Output: ${body.slice(0, OUTPUT_LIMIT).trim()}` : line;
          resolve({ status: code >= 200 && code < 400 ? 'passing' : 'critical', output });
        });
        res.on('error', (err) => resolve({ status: 'critical', output: err.message }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timed out after ${spec.timeoutMs} ms`)));
    req.on('error', (err) => resolve({ status: 'critical', output: `${spec.method} ${spec.path}: ${err.message}` }));
    req.end();
  });
}

function tcpCheck(port: number, timeoutMs: number): Promise<{ status: 'passing' | 'critical'; output: string }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, timeout: timeoutMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve({ status: 'passing', output: 'Success' });
    });
    socket.once('timeout', () => socket.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    socket.once('error', (err) => resolve({ status: 'critical', output: err.message }));
  });
}
