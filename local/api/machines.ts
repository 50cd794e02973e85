// /v1/apps/{app}/machines: create, list, get, update, start, stop, restart, destroy, cordon.
import { open } from 'node:fs/promises';
import { parseDuration } from '../durations.ts';
import { badRequest, conflict, notFound, preconditionFailed, unprocessable } from '../errors.ts';
import { machineId, machineName, nonce, ulid } from '../ids.ts';
import { ImageError, readImage } from '../images.ts';
import { LOCAL_REGION, presentMachine } from '../presenters.ts';
import type { Runtime } from '../runtime.ts';
import type { LeaseRecord, MachineRecord } from '../store.ts';
import { stopSignalOf, stopTimeoutOf } from '../supervisor.ts';
import { json, parseBody, queryBool, queryInt, queryList, type RouteTable } from './http.ts';
import { SIGNALS, createMachineBody, normalizeConfig, stopBody, updateMachineBody } from './schemas.ts';

const M = '/v1/apps/:app/machines';
const RUNNING = ['started', 'starting', 'replacing', 'stopping'];
const LOG_TAIL_BYTES = 2 * 1024 * 1024;

async function assertImage(rt: Runtime, image: string): Promise<void> {
  try {
    await readImage(rt.dataDir, image);
  } catch (err) {
    if (err instanceof ImageError) throw unprocessable(err.message);
    throw err;
  }
}

function assertSecretsVersion(rt: Runtime, appName: string, min: number | undefined): void {
  const current = rt.app(appName).secretsVersion;
  if (min !== undefined && min > current) {
    throw badRequest(`min_secrets_version ${min} is newer than the app's secrets (version ${current})`);
  }
}

export function takeLease(m: MachineRecord, ttlSeconds: number, description?: string): LeaseRecord {
  m.lease = { nonce: nonce(), expiresAt: Math.floor(Date.now() / 1000) + ttlSeconds, owner: 'rhone-local', description, version: m.version };
  return m.lease;
}

// Cursors are opaque to clients; here they name the last machine of the previous page.
export function encodeCursor(parts: string[]): string {
  return Buffer.from(JSON.stringify(parts)).toString('base64url');
}

export function decodeCursor(cursor: string): string[] {
  try {
    const parts = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(parts) && parts.every((p) => typeof p === 'string')) return parts;
  } catch {
    // fall through
  }
  throw badRequest('cursor is not one this server gave out');
}

const byCreation = (a: MachineRecord, b: MachineRecord) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id);

async function tail(file: string, lines: number): Promise<string> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch {
    return '';
  }
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, LOG_TAIL_BYTES);
    const buf = Buffer.alloc(length);
    await handle.read(buf, 0, length, size - length);
    const all = buf.toString('utf8').split('\n');
    if (all[all.length - 1] === '') all.pop();
    return all.slice(-lines).join('\n') + (all.length ? '\n' : '');
  } finally {
    await handle.close();
  }
}

export function registerMachines(routes: RouteTable, rt: Runtime): void {
  routes.add('POST', M, async (req) => {
    const app = rt.app(req.params.app);
    const body = parseBody(createMachineBody, req.body);
    const config = normalizeConfig(body.config);
    await assertImage(rt, config.image);
    assertSecretsVersion(rt, app.name, body.min_secrets_version);
    const now = new Date().toISOString();
    const m: MachineRecord = {
      id: machineId(),
      name: body.name ?? machineName(),
      app: app.name,
      region: body.region ?? LOCAL_REGION,
      state: 'created',
      version: ulid(),
      config,
      cordoned: body.skip_service_registration === true,
      createdAt: now,
      updatedAt: now,
      events: [],
      skipSecrets: body.skip_secrets === true,
      minSecretsVersion: body.min_secrets_version,
      hostPorts: {},
      restarts: 0,
    };
    rt.store.state.machines[m.id] = m;
    rt.supervisor.recordEvent(m, 'launch', 'created', 'user');
    const lease = body.lease_ttl ? takeLease(m, body.lease_ttl, 'taken at creation') : undefined;
    if (!body.skip_launch) rt.supervisor.start(m);
    return json(presentMachine(rt, m, { nonce: lease?.nonce }));
  });

  routes.add('GET', M, (req) => {
    rt.app(req.params.app);
    const { query } = req;
    const states = queryList(query, 'state');
    const region = query.get('region');
    const includeDeleted = queryBool(query, 'include_deleted');
    const limit = queryInt(query, 'limit', 1, 1000);
    const cursor = query.get('cursor');
    if (cursor && !limit) throw badRequest('cursor requires limit');
    const metadata = [...query.entries()].filter(([k]) => k.startsWith('metadata.')).map(([k, v]) => [k.slice(9), v]);
    let machines = rt
      .machinesOf(req.params.app)
      .filter((m) => includeDeleted || m.state !== 'destroyed')
      .filter((m) => states.length === 0 || states.includes(m.state))
      .filter((m) => !region || m.region === region)
      .filter((m) => metadata.every(([k, v]) => m.config.metadata?.[k] === v))
      .sort(byCreation);
    if (cursor) {
      const [createdAt, id] = decodeCursor(cursor);
      machines = machines.filter((m) => m.createdAt > createdAt || (m.createdAt === createdAt && m.id > id));
    }
    const page = limit ? machines.slice(0, limit) : machines;
    const last = page[page.length - 1];
    const headers = limit && machines.length > page.length && last ? { 'fly-next-cursor': encodeCursor([last.createdAt, last.id]) } : undefined;
    const options = { summary: queryBool(query, 'summary'), includeLease: queryBool(query, 'include_leases') };
    return json(
      page.map((m) => presentMachine(rt, m, options)),
      200,
      headers,
    );
  });

  routes.add('GET', `${M}/:id`, (req) => {
    const m = rt.machine(req.params.app, req.params.id);
    const version = req.query.get('version');
    if (version && version !== m.version)
      throw notFound(`machine ${m.id} has no version ${version} (the local runtime keeps only the current one, ${m.version})`);
    return json(presentMachine(rt, m, { includeLease: queryBool(req.query, 'include_leases') }));
  });

  routes.add('POST', `${M}/:id`, async (req) => {
    const m = rt.liveMachine(req.params.app, req.params.id);
    rt.requireLease(m, req.headers);
    const body = parseBody(updateMachineBody, req.body);
    if (body.current_version && body.current_version !== m.version) {
      throw conflict(`current_version ${body.current_version} is stale: machine ${m.id} is now at version ${m.version}`);
    }
    const config = normalizeConfig(body.config);
    await assertImage(rt, config.image);
    assertSecretsVersion(rt, m.app, body.min_secrets_version);
    if (m.state === 'destroying') throw preconditionFailed(`machine ${m.id} is being destroyed`);
    const previous = { signal: stopSignalOf(m), timeoutMs: stopTimeoutOf(m) };
    m.config = config;
    m.version = ulid();
    m.restarts = 0;
    if (body.name) m.name = body.name;
    if (body.region) m.region = body.region;
    if (body.skip_secrets !== undefined) m.skipSecrets = body.skip_secrets;
    if (body.min_secrets_version !== undefined) m.minSecretsVersion = body.min_secrets_version;
    if (body.skip_service_registration) m.cordoned = true;
    if (m.lease) m.lease.version = m.version;
    rt.supervisor.replace(m, previous, body.skip_launch === true);
    return json(presentMachine(rt, m));
  });

  routes.add('DELETE', `${M}/:id`, (req) => {
    const m = rt.liveMachine(req.params.app, req.params.id);
    rt.requireLease(m, req.headers);
    const force = queryBool(req.query, 'force');
    if (m.state === 'destroying') return json({ ok: true });
    if (!force && RUNNING.includes(m.state)) {
      throw preconditionFailed(`machine ${m.id} is ${m.state}: stop it first, or destroy it with force=true`);
    }
    rt.supervisor.destroy(m, force);
    return json({ ok: true });
  });

  routes.add('POST', `${M}/:id/start`, (req) => {
    const m = rt.liveMachine(req.params.app, req.params.id);
    rt.requireLease(m, req.headers);
    if (m.state === 'destroying') throw preconditionFailed(`machine ${m.id} is being destroyed`);
    const previous = m.state;
    rt.supervisor.start(m);
    return json({ previous_state: previous });
  });

  routes.add('POST', `${M}/:id/stop`, (req) => {
    const m = rt.liveMachine(req.params.app, req.params.id);
    rt.requireLease(m, req.headers);
    const body = parseBody(stopBody, req.body);
    rt.supervisor.stop(m, stopSignalOf(m, body.signal), stopTimeoutOf(m, body.timeout));
    return json({ ok: true });
  });

  routes.add('POST', `${M}/:id/restart`, (req) => {
    const m = rt.liveMachine(req.params.app, req.params.id);
    rt.requireLease(m, req.headers);
    const signal = req.query.get('signal') ?? undefined;
    if (signal && !(SIGNALS as readonly string[]).includes(signal)) throw badRequest(`signal must be one of ${SIGNALS.join(', ')}`);
    // Fly takes the timeout as a Go duration or a number of seconds.
    const rawTimeout = req.query.get('timeout');
    const timeout = rawTimeout && /^\d+$/.test(rawTimeout) ? `${rawTimeout}s` : (rawTimeout ?? undefined);
    if (timeout !== undefined && parseDuration(timeout) === undefined) throw badRequest('timeout must be a Go duration or a number of seconds');
    if (m.state === 'destroying') throw preconditionFailed(`machine ${m.id} is being destroyed`);
    rt.supervisor.restart(m, stopSignalOf(m, signal), stopTimeoutOf(m, timeout));
    return json({ ok: true });
  });

  for (const [verb, cordoned] of [
    ['cordon', true],
    ['uncordon', false],
  ] as const) {
    routes.add('POST', `${M}/:id/${verb}`, (req) => {
      const m = rt.liveMachine(req.params.app, req.params.id);
      rt.requireLease(m, req.headers);
      m.cordoned = cordoned;
      rt.supervisor.touch(m);
      return json({ ok: true });
    });
  }

  // Local extension: the machine's stdout and stderr.
  routes.add('GET', `${M}/:id/logs`, async (req) => {
    const m = rt.machine(req.params.app, req.params.id);
    const lines = queryInt(req.query, 'tail', 1, 100_000) ?? 100;
    return { status: 200, text: await tail(rt.supervisor.logFile(m), lines) };
  });
}
