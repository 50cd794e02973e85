// /v1/apps: create (idempotent with a key), list, get, delete; and the org-wide machine list.
import { badRequest, unprocessable } from '../errors.ts';
import { appId } from '../ids.ts';
import { presentApp, presentOrgMachine } from '../presenters.ts';
import type { Runtime } from '../runtime.ts';
import type { AppRecord } from '../store.ts';
import { json, parseBody, queryBool, queryInt, queryList, type RouteTable } from './http.ts';
import { decodeCursor, encodeCursor } from './machines.ts';
import { createAppBody } from './schemas.ts';

const APP_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const ORG_PAGE_MAX = 1000;

export function registerApps(routes: RouteTable, rt: Runtime): void {
  routes.add('POST', '/v1/apps', (req) => {
    const body = parseBody(createAppBody, req.body);
    const apps = Object.values(rt.store.state.apps);
    if (body.idempotency_key) {
      const first = apps.find((a) => a.idempotencyKey === body.idempotency_key && a.orgSlug === body.org_slug);
      if (first && (!body.name || body.name === first.name)) return json({ id: first.id, created_at: first.createdAt }, 201);
      if (first) throw badRequest(`idempotency_key was already used to create app "${first.name}"; it cannot create "${body.name}"`);
    }
    if (!body.name) throw badRequest('name is required');
    if (!APP_NAME.test(body.name)) throw badRequest(`app name "${body.name}" must be lowercase letters, digits and dashes (at most 63)`);
    if (rt.store.state.apps[body.name]) throw unprocessable(`app name "${body.name}" is already taken`, 'name_taken');
    const app: AppRecord = {
      id: appId(),
      name: body.name,
      orgSlug: body.org_slug,
      network: body.network ?? 'default',
      createdAt: Date.now(),
      idempotencyKey: body.idempotency_key,
      secretsVersion: 0,
      secrets: {},
      certificates: {},
      ips: [],
    };
    rt.store.state.apps[app.name] = app;
    rt.store.changed();
    return json({ id: app.id, created_at: app.createdAt }, 201);
  });

  routes.add('GET', '/v1/apps', (req) => {
    const org = req.query.get('org_slug');
    if (!org) throw badRequest('org_slug is required');
    const limit = queryInt(req.query, 'limit', 1, 5000);
    const cursor = req.query.get('cursor');
    const all = Object.values(rt.store.state.apps)
      .filter((a) => a.orgSlug === org)
      .sort((a, b) => a.name.localeCompare(b.name));
    const after = cursor ? decodeCursor(cursor)[0] : undefined;
    const rest = after === undefined ? all : all.filter((a) => a.name > after);
    const page = limit ? rest.slice(0, limit) : rest;
    const last = page[page.length - 1];
    return json({
      apps: page.map((a) => presentApp(rt, a)),
      total_apps: all.length,
      ...(limit && rest.length > page.length && last ? { next_cursor: encodeCursor([last.name]) } : {}),
    });
  });

  routes.add('GET', '/v1/apps/:app', (req) => json(presentApp(rt, rt.app(req.params.app))));

  routes.add('DELETE', '/v1/apps/:app', (req) => {
    const app = rt.app(req.params.app);
    const machines = rt.machinesOf(app.name);
    for (const m of machines) if (m.state !== 'destroyed' && m.state !== 'destroying') rt.supervisor.destroy(m, true);
    delete rt.store.state.apps[app.name];
    rt.store.changed();
    // Once destroyed, its machines are forgotten, so a new app of the same name starts empty.
    void Promise.all(machines.map((m) => rt.supervisor.settled(m))).then(() => {
      if (rt.store.state.apps[app.name]?.id === app.id) return;
      for (const m of machines) if (m.state === 'destroyed') delete rt.store.state.machines[m.id];
      rt.store.changed();
    });
    return { status: 202 };
  });

  // Every machine of an org, oldest update first, for metering.
  routes.add('GET', '/v1/orgs/:org/machines', (req) => {
    const { query } = req;
    const includeDeleted = queryBool(query, 'include_deleted');
    const summary = queryBool(query, 'summary');
    const states = queryList(query, 'state');
    const region = query.get('region');
    const limit = queryInt(query, 'limit', 1, ORG_PAGE_MAX) ?? ORG_PAGE_MAX;
    const cursor = query.get('cursor');
    const updatedAfter = query.get('updated_after');
    let since: string | undefined;
    if (updatedAfter && !cursor) {
      const t = Date.parse(updatedAfter);
      if (Number.isNaN(t)) throw badRequest('updated_after must be an RFC 3339 timestamp');
      since = new Date(t).toISOString();
    }
    const orgApps = new Set(
      Object.values(rt.store.state.apps)
        .filter((a) => a.orgSlug === req.params.org)
        .map((a) => a.name),
    );
    let machines = Object.values(rt.store.state.machines)
      .filter((m) => orgApps.has(m.app))
      .filter((m) => includeDeleted || m.state !== 'destroyed')
      .filter((m) => states.length === 0 || states.includes(m.state))
      .filter((m) => !region || m.region === region)
      .filter((m) => !since || m.updatedAt > since)
      .sort((a, b) => a.updatedAt.localeCompare(b.updatedAt) || a.id.localeCompare(b.id));
    if (cursor) {
      const [updatedAt, id] = decodeCursor(cursor);
      machines = machines.filter((m) => m.updatedAt > updatedAt || (m.updatedAt === updatedAt && m.id > id));
    }
    const page = machines.slice(0, limit);
    const last = page[page.length - 1];
    return json({
      machines: page.map((m) => presentOrgMachine(m, summary)),
      ...(last ? { last_updated_at: last.updatedAt, last_machine_id: last.id } : {}),
      ...(machines.length > page.length && last ? { next_cursor: encodeCursor([last.updatedAt, last.id]) } : {}),
    });
  });
}
