// The Fly Machines API client. Production points it at api.machines.dev; local mode at the local
// runtime, which speaks the same API. Every call goes through one request path that keeps to
// Fly's rate limits and retries what is safe to retry.
import { setTimeout as delay } from 'node:timers/promises';
import { FlyApiError, FlyNetworkError, isTransient } from './errors.ts';
import { DEFAULT_LIMIT, GET_MACHINE_LIMIT, RateLimiter, type BucketSpec } from './rate-limit.ts';
import {
  META,
  type App,
  type CertificateDetail,
  type CreateAppRequest,
  type CreateMachineRequest,
  type IPAssignment,
  type Lease,
  type Machine,
  type MachineEvent,
  type OrgMachinesResponse,
  type SecretsUpdateResponse,
  type StopSignal,
  type UpdateMachineRequest,
  type WaitMachineResponse,
} from './types.ts';

export interface FlyClientOptions {
  baseUrl: string;
  token: string;
  /** Retries after the first attempt, for transient failures. */
  retries?: number;
  backoff?: { baseMs: number; capMs: number };
  /** Per-attempt timeout; wait calls get theirs from the wait timeout. */
  requestTimeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** The clock the rate limiter reads; tests pass a fake one. */
  now?: () => number;
  /** Called before each retry, e.g. to log it. */
  onRetry?: (info: { method: string; path: string; attempt: number; waitMs: number; reason: string }) => void;
}

interface Call {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  /** Rate-limit bucket: the action and the machine or app it acts on. */
  action: string;
  id: string;
  limit?: BucketSpec;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  /** Statuses that are an answer, not an error (e.g. 404 on a lookup). */
  accept?: number[];
  /** Retrying this call is never safe by itself (machine create). */
  noRetry?: boolean;
  timeoutMs?: number;
}

interface Response<T> {
  status: number;
  body: T;
  headers: Headers;
}

/** flyctl's launchLookupDelay: how long Fly's machine listing may lag a create. */
const LAUNCH_LOOKUP_DELAY_MS = 500;

const seg = (s: string) => encodeURIComponent(s).replace(/\*/g, '%2A');

/** Fly tokens that carry their scheme ("FlyV1 fm2_...") are sent as issued; bare ones as Bearer. */
export function authorizationHeader(token: string): string {
  const trimmed = token.trim();
  return /^[A-Za-z][A-Za-z0-9]*\s+\S/.test(trimmed) ? trimmed : `Bearer ${trimmed}`;
}

/** Retry-After as seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | null {
  if (!header) return null;
  if (/^\d+(\.\d+)?$/.test(header.trim())) return Math.round(Number(header) * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

export interface ListMachinesOptions {
  metadata?: Record<string, string>;
  state?: string[];
  region?: string;
  includeDeleted?: boolean;
  /** Page size; all pages are fetched. */
  pageSize?: number;
}

export class FlyClient {
  private readonly limiter: RateLimiter;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly retries: number;
  private readonly backoff: { baseMs: number; capMs: number };
  private readonly auth: string;

  constructor(private readonly options: FlyClientOptions) {
    this.sleep = options.sleep ?? ((ms) => delay(ms));
    this.limiter = new RateLimiter(this.sleep, options.now);
    this.retries = options.retries ?? 5;
    this.backoff = options.backoff ?? { baseMs: 500, capMs: 10_000 };
    this.auth = authorizationHeader(options.token);
  }

  // ---- the one request path --------------------------------------------------------------

  private backoffMs(attempt: number): number {
    // Full jitter: a random wait up to the exponential ceiling, so retries from many callers spread out.
    const ceiling = Math.min(this.backoff.capMs, this.backoff.baseMs * 2 ** (attempt - 1));
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }

  private async once<T>(call: Call): Promise<Response<T>> {
    const url = new URL(this.options.baseUrl.replace(/\/+$/, '') + call.path);
    for (const [k, v] of Object.entries(call.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { authorization: this.auth, accept: 'application/json', ...call.headers };
    if (call.body !== undefined) headers['content-type'] = 'application/json';
    await this.limiter.take(call.action, call.id, call.limit ?? DEFAULT_LIMIT);
    let res: globalThis.Response;
    try {
      res = await fetch(url, {
        method: call.method,
        headers,
        body: call.body === undefined ? undefined : JSON.stringify(call.body),
        signal: AbortSignal.timeout(call.timeoutMs ?? this.options.requestTimeoutMs ?? 30_000),
      });
    } catch (err) {
      throw new FlyNetworkError(call.method, call.path, err);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw new FlyNetworkError(call.method, call.path, err);
    }
    let body: unknown = undefined;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    if (res.ok || call.accept?.includes(res.status)) return { status: res.status, body: body as T, headers: res.headers };
    const err = body as { error?: string; status?: string } | string | undefined;
    const message = typeof err === 'string' ? err.slice(0, 300) : (err?.error ?? res.statusText);
    const apiError = new FlyApiError(res.status, call.method, call.path, message, typeof err === 'object' ? err?.status : undefined);
    (apiError as FlyApiError & { retryAfterMs?: number | null }).retryAfterMs = retryAfterMs(res.headers.get('retry-after'));
    throw apiError;
  }

  private async request<T>(call: Call): Promise<Response<T>> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once<T>(call);
      } catch (err) {
        if (call.noRetry || !isTransient(err) || attempt > this.retries) throw err;
        const hinted = (err as { retryAfterMs?: number | null }).retryAfterMs;
        const waitMs = hinted != null ? Math.min(hinted, 60_000) : this.backoffMs(attempt);
        this.options.onRetry?.({ method: call.method, path: call.path, attempt, waitMs, reason: (err as Error).message });
        await this.sleep(waitMs);
      }
    }
  }

  // ---- apps --------------------------------------------------------------------------------

  /**
   * Creates the app; the idempotency key makes a retried create return the first app. `wait=true`
   * as fly-go's CreateApp sends it (flaps/flaps_apps.go: POST /apps?wait=true), so the app is ready
   * (its registry repository too) when the answer comes; the spec does not list the parameter.
   */
  async createApp(input: CreateAppRequest): Promise<{ id: string; created_at?: number }> {
    const res = await this.request<{ id: string; created_at?: number }>({
      method: 'POST',
      path: '/v1/apps',
      action: 'apps.create',
      id: input.org_slug,
      body: input,
      query: { wait: true },
    });
    return res.body;
  }

  async getApp(app: string): Promise<App | null> {
    const res = await this.request<App>({ method: 'GET', path: `/v1/apps/${seg(app)}`, action: 'apps.get', id: app, accept: [404] });
    return res.status === 404 ? null : res.body;
  }

  async deleteApp(app: string): Promise<void> {
    await this.request({ method: 'DELETE', path: `/v1/apps/${seg(app)}`, action: 'apps.delete', id: app, accept: [404] });
  }

  /**
   * A token limited to this one app (`POST /v1/apps/{app}/deploy_token`, App_create_deploy_token
   * in the spec): Fly's "deploy tokens are limited to a single application" (docs
   * reference/deploy-tokens), the REST form of `fly tokens create deploy`. The spec types `expiry`
   * as a bare string; it is sent as a Go duration ("35m0s"), the form flyctl sends for
   * `--expiry` (internal/command/tokens/create.go: expiryDuration.String()). The answer's token
   * carries its scheme ("FlyV1 fm2_…"), as `fly tokens create` prints it [inference from flyctl's
   * TokenHeader]. Retried like any call: a retry after a lost answer leaves a twin token nobody
   * holds, which dies at its expiry.
   */
  async createDeployToken(app: string, expiry: string): Promise<string> {
    const res = await this.request<{ token?: string }>({
      method: 'POST',
      path: `/v1/apps/${seg(app)}/deploy_token`,
      action: 'apps.deploy_token',
      id: app,
      body: { expiry },
    });
    const token = res.body?.token;
    if (typeof token !== 'string' || token.trim() === '') {
      throw new FlyApiError(res.status, 'POST', `/v1/apps/${seg(app)}/deploy_token`, 'the answer held no token');
    }
    return token;
  }

  // ---- machines ----------------------------------------------------------------------------

  private machinePath(app: string, id?: string, verb?: string): string {
    return `/v1/apps/${seg(app)}/machines${id ? `/${seg(id)}` : ''}${verb ? `/${verb}` : ''}`;
  }

  async listMachines(app: string, options: ListMachinesOptions = {}): Promise<Machine[]> {
    const query: Record<string, string | number | boolean | undefined> = {
      region: options.region,
      state: options.state?.join(','),
      include_deleted: options.includeDeleted || undefined,
      limit: options.pageSize ?? 100,
    };
    for (const [k, v] of Object.entries(options.metadata ?? {})) query[`metadata.${k}`] = v;
    const all: Machine[] = [];
    for (let cursor: string | undefined; ;) {
      const res = await this.request<Machine[]>({
        method: 'GET',
        path: this.machinePath(app),
        action: 'machines.list',
        id: app,
        query: { ...query, cursor },
      });
      all.push(...(res.body ?? []));
      cursor = res.headers.get('fly-next-cursor') ?? undefined;
      if (!cursor) return all;
    }
  }

  async getMachine(app: string, id: string): Promise<Machine | null> {
    const res = await this.request<Machine>({
      method: 'GET',
      path: this.machinePath(app, id),
      action: 'machines.get',
      id,
      limit: GET_MACHINE_LIMIT,
      accept: [404],
    });
    return res.status === 404 ? null : res.body;
  }

  /**
   * Creates a machine. A create is never retried blindly: a 408 or a lost answer may mean the
   * machine exists. With a launch id in its metadata, we first look for it and only then retry.
   */
  async createMachine(app: string, input: CreateMachineRequest): Promise<Machine> {
    const launchId = input.config.metadata?.[META.launchId];
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await this.request<Machine>({
          method: 'POST',
          path: this.machinePath(app),
          action: 'machines.create',
          id: app,
          body: input,
          noRetry: true,
          timeoutMs: 90_000,
        });
        return res.body;
      } catch (err) {
        if (!isTransient(err) || attempt > this.retries) throw err;
        if (launchId) {
          // Fly's listing lags a create that took effect: flyctl waits launchLookupDelay (500 ms)
          // before it looks (strategy_bluegreen.go launchGreenMachineWithRetry). A twin that still
          // slips through is swept by the release, which lists its machines again after creating.
          await this.sleep(LAUNCH_LOOKUP_DELAY_MS);
          const [existing] = await this.listMachines(app, { metadata: { [META.launchId]: launchId } });
          if (existing) return existing;
        } else if (!(err instanceof FlyApiError && err.status === 429)) {
          // Without a launch id there is no way to tell whether it exists: say so rather than risk a twin.
          throw err;
        }
        const hinted = (err as { retryAfterMs?: number | null }).retryAfterMs;
        const waitMs = hinted != null ? Math.min(hinted, 60_000) : this.backoffMs(attempt);
        this.options.onRetry?.({ method: 'POST', path: this.machinePath(app), attempt, waitMs, reason: (err as Error).message });
        await this.sleep(waitMs);
      }
    }
  }

  async updateMachine(app: string, id: string, input: UpdateMachineRequest, leaseNonce?: string): Promise<Machine> {
    const res = await this.request<Machine>({
      method: 'POST',
      path: this.machinePath(app, id),
      action: 'machines.update',
      id,
      body: input,
      headers: leaseHeader(leaseNonce),
      timeoutMs: 90_000,
    });
    return res.body;
  }

  async startMachine(app: string, id: string, leaseNonce?: string): Promise<void> {
    await this.request({ method: 'POST', path: this.machinePath(app, id, 'start'), action: 'machines.start', id, headers: leaseHeader(leaseNonce) });
  }

  async stopMachine(app: string, id: string, options: { signal?: StopSignal; timeout?: string } = {}, leaseNonce?: string): Promise<void> {
    await this.request({
      method: 'POST',
      path: this.machinePath(app, id, 'stop'),
      action: 'machines.stop',
      id,
      body: options,
      headers: leaseHeader(leaseNonce),
    });
  }

  /** Destroys a machine; a machine that is already gone counts as destroyed. */
  async destroyMachine(app: string, id: string, options: { force?: boolean } = {}, leaseNonce?: string): Promise<void> {
    await this.request({
      method: 'DELETE',
      path: this.machinePath(app, id),
      action: 'machines.delete',
      id,
      query: { force: options.force || undefined },
      headers: leaseHeader(leaseNonce),
      accept: [404],
    });
  }

  async cordon(app: string, id: string, leaseNonce?: string): Promise<void> {
    await this.request({ method: 'POST', path: this.machinePath(app, id, 'cordon'), action: 'machines.cordon', id, headers: leaseHeader(leaseNonce) });
  }

  async uncordon(app: string, id: string, leaseNonce?: string): Promise<void> {
    await this.request({ method: 'POST', path: this.machinePath(app, id, 'uncordon'), action: 'machines.uncordon', id, headers: leaseHeader(leaseNonce) });
  }

  async listEvents(app: string, id: string, limit = 50): Promise<MachineEvent[]> {
    const res = await this.request<MachineEvent[]>({
      method: 'GET',
      path: this.machinePath(app, id, 'events'),
      action: 'machines.events',
      id,
      query: { limit },
    });
    return res.body ?? [];
  }

  async patchMetadata(app: string, id: string, metadata: Record<string, string | null>, leaseNonce?: string): Promise<void> {
    await this.request({
      method: 'PATCH',
      path: this.machinePath(app, id, 'metadata'),
      action: 'machines.metadata',
      id,
      body: { metadata },
      headers: leaseHeader(leaseNonce),
    });
  }

  /**
   * Waits for a machine to reach a state. Fly caps one wait at 60 s and answers 408 when it runs
   * out, so we keep asking until our own deadline. Returns the final answer, or throws a
   * FlyApiError(408) when the deadline passes.
   */
  async waitForState(app: string, id: string, state: string, options: { version?: string; timeoutMs?: number } = {}): Promise<WaitMachineResponse> {
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new FlyApiError(408, 'GET', this.machinePath(app, id, 'wait'), `machine did not reach "${state}" in time`);
      const seconds = Math.max(1, Math.min(60, Math.ceil(left / 1000)));
      const res = await this.request<WaitMachineResponse>({
        method: 'GET',
        path: this.machinePath(app, id, 'wait'),
        action: 'machines.wait',
        id,
        limit: GET_MACHINE_LIMIT,
        query: { state, version: options.version, timeout: seconds },
        accept: [408],
        timeoutMs: seconds * 1000 + 10_000,
      });
      if (res.status !== 408) return res.body;
    }
  }

  // ---- leases ------------------------------------------------------------------------------

  async acquireLease(app: string, id: string, ttlSeconds: number, description: string, nonce?: string): Promise<Lease> {
    const res = await this.request<Lease>({
      method: 'POST',
      path: this.machinePath(app, id, 'lease'),
      action: 'machines.lease',
      id,
      body: { ttl: ttlSeconds, description },
      headers: leaseHeader(nonce),
    });
    return res.body;
  }

  async releaseLease(app: string, id: string, nonce: string): Promise<void> {
    await this.request({
      method: 'DELETE',
      path: this.machinePath(app, id, 'lease'),
      action: 'machines.lease',
      id,
      headers: leaseHeader(nonce),
      accept: [404],
    });
  }

  // ---- secrets -----------------------------------------------------------------------------

  /** Sets (string) and unsets (null) app secrets; returns the new secrets version. */
  async setSecrets(app: string, values: Record<string, string | null>): Promise<SecretsUpdateResponse> {
    const res = await this.request<SecretsUpdateResponse>({
      method: 'POST',
      path: `/v1/apps/${seg(app)}/secrets`,
      action: 'secrets.update',
      id: app,
      body: { values },
    });
    return res.body;
  }

  async listSecrets(app: string): Promise<{ name: string; digest?: string }[]> {
    const res = await this.request<{ secrets?: { name: string; digest?: string }[] }>({
      method: 'GET',
      path: `/v1/apps/${seg(app)}/secrets`,
      action: 'secrets.list',
      id: app,
    });
    return res.body?.secrets ?? [];
  }

  // ---- certificates ------------------------------------------------------------------------

  async requestCertificate(app: string, hostname: string): Promise<CertificateDetail> {
    const res = await this.request<CertificateDetail>({
      method: 'POST',
      path: `/v1/apps/${seg(app)}/certificates/acme`,
      action: 'certificates.create',
      id: app,
      body: { hostname },
    });
    return res.body;
  }

  async getCertificate(app: string, hostname: string): Promise<CertificateDetail | null> {
    const res = await this.request<CertificateDetail>({
      method: 'GET',
      path: `/v1/apps/${seg(app)}/certificates/${seg(hostname)}`,
      action: 'certificates.get',
      id: app,
      accept: [404],
    });
    return res.status === 404 ? null : res.body;
  }

  async checkCertificate(app: string, hostname: string): Promise<CertificateDetail> {
    const res = await this.request<CertificateDetail>({
      method: 'POST',
      path: `/v1/apps/${seg(app)}/certificates/${seg(hostname)}/check`,
      action: 'certificates.check',
      id: app,
    });
    return res.body;
  }

  async deleteCertificate(app: string, hostname: string): Promise<void> {
    await this.request({ method: 'DELETE', path: `/v1/apps/${seg(app)}/certificates/${seg(hostname)}`, action: 'certificates.delete', id: app, accept: [404] });
  }

  // ---- IP assignments ----------------------------------------------------------------------

  async listIps(app: string): Promise<IPAssignment[]> {
    const res = await this.request<{ ips?: IPAssignment[] }>({ method: 'GET', path: `/v1/apps/${seg(app)}/ip_assignments`, action: 'ips.list', id: app });
    return res.body?.ips ?? [];
  }

  async assignIp(app: string, type: 'v4' | 'v6' | 'shared_v4' | 'private_v6', region?: string): Promise<IPAssignment> {
    const res = await this.request<IPAssignment>({
      method: 'POST',
      path: `/v1/apps/${seg(app)}/ip_assignments`,
      action: 'ips.create',
      id: app,
      body: { type, region },
    });
    return res.body;
  }

  async releaseIp(app: string, ip: string): Promise<void> {
    await this.request({ method: 'DELETE', path: `/v1/apps/${seg(app)}/ip_assignments/${seg(ip)}`, action: 'ips.delete', id: app, accept: [404] });
  }

  /** Local runtime only: the bytes its router has sent to the app's clients, ever (a counter). */
  async localBytesOut(app: string): Promise<number> {
    const res = await this.request<{ bytes_out?: number }>({
      method: 'GET',
      path: `/v1/apps/${seg(app)}/local/bandwidth`,
      action: 'local.bandwidth',
      id: app,
      accept: [404],
    });
    return res.status === 404 ? 0 : Number(res.body?.bytes_out ?? 0);
  }

  /**
   * Local runtime only: the router's count of the WebSocket connections the machines closed since
   * `since` (ms since the epoch), and of their clients that came back to another machine of the
   * app (local/connections.ts says how they are matched).
   */
  async localConnections(app: string, machines: string[], since: number): Promise<LocalConnections> {
    const res = await this.request<LocalConnections>({
      method: 'GET',
      path: `/v1/apps/${seg(app)}/local/connections`,
      action: 'local.connections',
      id: app,
      query: { machine: machines.join(','), since: Math.floor(since) },
    });
    return res.body;
  }

  // ---- org-wide ----------------------------------------------------------------------------

  /** Every machine of the org, all pages; for metering. */
  async listOrgMachines(org: string, options: OrgMachinesOptions = {}): Promise<OrgMachinesResponse['machines']> {
    const all: OrgMachinesResponse['machines'] = [];
    for await (const page of this.orgMachinePages(org, options)) all.push(...page);
    return all;
  }

  /**
   * The org's machines a page at a time, so a caller can work on one page while the next is
   * fetched. Each page's cursor comes from the previous answer: the pages of one listing are
   * sequential by nature, and all share the org's rate-limit bucket.
   */
  async *orgMachinePages(org: string, options: OrgMachinesOptions = {}): AsyncGenerator<OrgMachinesResponse['machines']> {
    for (let cursor: string | undefined; ;) {
      const res = await this.request<OrgMachinesResponse>({
        method: 'GET',
        path: `/v1/orgs/${seg(org)}/machines`,
        action: 'orgs.machines',
        id: org,
        query: { limit: options.pageSize ?? 1000, cursor, updated_after: options.updatedAfter, include_deleted: options.includeDeleted || undefined },
      });
      yield res.body?.machines ?? [];
      cursor = res.body?.next_cursor || undefined;
      if (!cursor) return;
    }
  }
}

export interface LocalConnections {
  open: number;
  drained: number;
  /** Of the drained, those that ended without a WebSocket close frame (the app was killed, not drained). */
  cut: number;
  closed_by_client: number;
  reconnected: number;
  /** ms from each reconnected client's close to its new connection, ascending. */
  reconnect_ms: number[];
  window_ms: number;
  settled: boolean;
}

export interface OrgMachinesOptions {
  updatedAfter?: string;
  pageSize?: number;
  /** Destroyed machines too: metering must see the last minutes of a machine destroyed since the last poll. */
  includeDeleted?: boolean;
}

function leaseHeader(nonce?: string): Record<string, string> | undefined {
  return nonce ? { 'fly-machine-lease-nonce': nonce } : undefined;
}

/** Fly's service check results, without the compatibility checks flaps adds for blue/green. */
export function realChecks(machine: Machine) {
  return (machine.checks ?? []).filter((c) => !c.name.startsWith('bg_deployments_compat'));
}
