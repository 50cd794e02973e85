// /v1/apps/{app}/machines/{id}: wait, events, lease, metadata.
import type { MachineState } from '../../backend/providers/fly/types.ts';
import { ApiError, badRequest, conflict, notFound, preconditionFailed } from '../errors.ts';
import { presentLease } from '../presenters.ts';
import { LEASE_HEADER, type Runtime } from '../runtime.ts';
import type { MachineRecord } from '../store.ts';
import { empty, json, parseBody, queryInt, queryList, type ApiRequest, type Reply, type RouteTable } from './http.ts';
import { leaseBody, metadataPatchBody, metadataValueBody } from './schemas.ts';
import { takeLease } from './machines.ts';

const M = '/v1/apps/:app/machines/:id';
const WAITABLE = new Set(['started', 'stopped', 'suspended', 'destroyed', 'failed', 'settled']);
const SETTLED = new Set<MachineState>(['created', 'started', 'stopped', 'suspended', 'failed', 'destroyed']);
const MAX_WAIT_S = 60;
const DEFAULT_LEASE_TTL_S = 30;

function waitReached(m: MachineRecord, states: string[], version: string | undefined): boolean {
  // An update replaced the version waited on: that instance has stopped for good.
  if (version && version !== m.version && (states.includes('stopped') || states.includes('destroyed'))) return true;
  return states.includes(m.state) || (states.includes('settled') && SETTLED.has(m.state));
}

function wait(rt: Runtime, req: ApiRequest): Promise<Reply> {
  const m = rt.machine(req.params.app, req.params.id);
  const states = queryList(req.query, 'state');
  if (states.length === 0) states.push('started');
  const unknown = states.find((s) => !WAITABLE.has(s));
  if (unknown) throw badRequest(`state must be one of ${[...WAITABLE].join(', ')}; got "${unknown}"`);
  const version = req.query.get('version') ?? req.query.get('instance_id') ?? undefined;
  const seconds = Math.min(MAX_WAIT_S, Math.max(1, queryInt(req.query, 'timeout', 0, Number.MAX_SAFE_INTEGER) ?? MAX_WAIT_S));
  const answer = (): Reply => json({ ok: true, state: m.state, version: m.version, event_id: m.events[0]?.id });

  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      if (waitReached(m, states, version)) {
        done();
        resolve(answer());
        return true;
      }
      if (m.state === 'destroyed') {
        done();
        reject(notFound(`machine ${m.id} was destroyed before it reached ${states.join(' or ')}`));
        return true;
      }
      return false;
    };
    const onChange = () => void check();
    const timer = setTimeout(() => {
      done();
      reject(new ApiError(408, `machine ${m.id} did not reach ${states.join(' or ')} within ${seconds}s; it is ${m.state}`));
    }, seconds * 1000);
    const onAbort = () => {
      done();
      resolve({ status: 499 });
    };
    const done = () => {
      clearTimeout(timer);
      rt.supervisor.changes.off(m.id, onChange);
      req.signal.removeEventListener('abort', onAbort);
    };
    if (check()) return;
    rt.supervisor.changes.on(m.id, onChange);
    req.signal.addEventListener('abort', onAbort);
  });
}

export function registerMachineExtras(routes: RouteTable, rt: Runtime): void {
  routes.add('GET', `${M}/wait`, (req) => wait(rt, req));

  routes.add('GET', `${M}/events`, (req) => {
    const m = rt.machine(req.params.app, req.params.id);
    const limit = queryInt(req.query, 'limit', 1, 50) ?? 20;
    return json(m.events.slice(0, limit));
  });

  // ---- leases --------------------------------------------------------------------------------

  routes.add('POST', `${M}/lease`, (req) => {
    const m = rt.liveMachine(req.params.app, req.params.id);
    const body = parseBody(leaseBody, req.body);
    const ttl = body.ttl ?? queryInt(req.query, 'ttl', 1, 24 * 3600) ?? DEFAULT_LEASE_TTL_S;
    const held = rt.activeLease(m);
    const given = req.headers[LEASE_HEADER];
    if (held && given !== held.nonce) {
      throw conflict(
        `machine ${m.id} is already leased by ${held.owner}${held.description ? ` (${held.description})` : ''} until ${new Date(held.expiresAt * 1000).toISOString()}`,
      );
    }
    if (held) {
      held.expiresAt = Math.floor(Date.now() / 1000) + ttl;
      if (body.description !== undefined) held.description = body.description;
    }
    const lease = held ?? takeLease(m, ttl, body.description);
    rt.supervisor.touch(m);
    return json(presentLease(lease), 201);
  });

  routes.add('GET', `${M}/lease`, (req) => {
    const m = rt.liveMachine(req.params.app, req.params.id);
    const lease = rt.activeLease(m);
    if (!lease) throw notFound(`machine ${m.id} has no lease`);
    return json(presentLease(lease));
  });

  routes.add('DELETE', `${M}/lease`, (req) => {
    const m = rt.liveMachine(req.params.app, req.params.id);
    const given = req.headers[LEASE_HEADER];
    if (typeof given !== 'string' || given === '') throw badRequest(`releasing a lease needs its nonce in the ${LEASE_HEADER} header`);
    const lease = rt.activeLease(m);
    if (!lease) throw notFound(`machine ${m.id} has no lease`);
    if (lease.nonce !== given) throw conflict(`the nonce does not match machine ${m.id}'s lease`);
    m.lease = undefined;
    rt.supervisor.touch(m);
    return json({ ok: true });
  });

  // ---- metadata ------------------------------------------------------------------------------

  routes.add('GET', `${M}/metadata`, (req) => json({ ...rt.machine(req.params.app, req.params.id).config.metadata }));

  const patch = (req: ApiRequest): Reply => {
    const m = rt.liveMachine(req.params.app, req.params.id);
    rt.requireLease(m, req.headers);
    const body = parseBody(metadataPatchBody, req.body);
    if (body.machine_version && body.machine_version !== m.version) {
      throw preconditionFailed(`machine_version ${body.machine_version} is stale: machine ${m.id} is at version ${m.version}`);
    }
    const metadata = { ...m.config.metadata };
    for (const [key, value] of Object.entries(body.metadata)) {
      if (value === null || value === '') delete metadata[key];
      else metadata[key] = value;
    }
    m.config = { ...m.config, metadata };
    rt.supervisor.touch(m);
    return empty(204);
  };
  routes.add('PATCH', `${M}/metadata`, patch);
  routes.add('PUT', `${M}/metadata`, patch);

  routes.add('GET', `${M}/metadata/:key`, (req) => {
    const m = rt.machine(req.params.app, req.params.id);
    const value = m.config.metadata?.[req.params.key];
    if (value === undefined) throw notFound(`machine ${m.id} has no metadata key "${req.params.key}"`);
    return json({ value });
  });

  routes.add('POST', `${M}/metadata/:key`, (req) => {
    const m = rt.liveMachine(req.params.app, req.params.id);
    rt.requireLease(m, req.headers);
    const { value } = parseBody(metadataValueBody, req.body);
    m.config = { ...m.config, metadata: { ...m.config.metadata, [req.params.key]: value } };
    rt.supervisor.touch(m);
    return empty(204);
  });

  routes.add('DELETE', `${M}/metadata/:key`, (req) => {
    const m = rt.liveMachine(req.params.app, req.params.id);
    rt.requireLease(m, req.headers);
    const metadata = { ...m.config.metadata };
    delete metadata[req.params.key];
    m.config = { ...m.config, metadata };
    rt.supervisor.touch(m);
    return empty(204);
  });
}
