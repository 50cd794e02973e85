// /v1/apps/{app}: secrets, certificates, IP assignments, and the router's bandwidth and connection counters.
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { parseDuration } from '../durations.ts';
import { badRequest, notFound, unprocessable } from '../errors.ts';
import { normalizeHostname, presentCertificate, presentCertificateCheck, presentCertificateSummary, refreshCertificate } from '../certificates.ts';
import { LOCAL_REGION } from '../presenters.ts';
import type { Runtime } from '../runtime.ts';
import type { AppRecord, CertificateRecord, IpRecord } from '../store.ts';
import { empty, json, parseBody, queryInt, queryList, type RouteTable } from './http.ts';
import { RECONNECT_WINDOW_MS } from '../connections.ts';
import { certificateBody, ipBody, metadataValueBody, secretsBody } from './schemas.ts';

const A = '/v1/apps/:app';
const deployTokenBody = z.looseObject({
  expiry: z
    .string('must be a Go duration string such as "30m0s"')
    // time.ParseDuration, which reads an expiry, wants a unit: "600" is "missing unit", not 600 ns.
    .refine((v) => !/^\s*\d+\s*$/.test(v) && (parseDuration(v) ?? 0) > 0, 'must be a positive Go duration with a unit, such as "30m0s" or "1h"')
    .optional(),
});
const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const digest = (value: string) => createHash('sha256').update(value).digest('hex').slice(0, 16);

/** Names and digests only: a secret's value never leaves the runtime except into a machine's env. */
function listSecrets(app: AppRecord) {
  return Object.entries(app.secrets)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, s]) => ({ name, digest: s.digest, created_at: s.createdAt, updated_at: s.updatedAt }));
}

function assertSecretName(name: string): void {
  if (!SECRET_NAME.test(name)) throw badRequest(`secret name "${name}" must be letters, digits and underscores, not starting with a digit`);
}

function setSecret(app: AppRecord, name: string, value: string | null, now: string): void {
  if (value === null) {
    delete app.secrets[name];
    return;
  }
  const existing = app.secrets[name];
  app.secrets[name] = { value, digest: digest(value), createdAt: existing?.createdAt ?? now, updatedAt: now };
}

function certificate(rt: Runtime, appName: string, hostname: string): CertificateRecord {
  const cert = rt.app(appName).certificates[normalizeHostname(hostname) ?? hostname];
  if (!cert) throw notFound(`app "${appName}" has no certificate for ${hostname}`);
  return cert;
}

function ipFor(type: string): { ip: string; shared: boolean } {
  if (type === 'v4' || type === 'shared_v4' || type === 'egress_v4') return { ip: '127.0.0.1', shared: type === 'shared_v4' };
  if (type === 'v6' || type === 'private_v6' || type === 'egress_v6') return { ip: '::1', shared: false };
  throw badRequest(`IP type ${type} is not available locally; use v4, shared_v4, v6 or private_v6`);
}

function presentIp(ip: IpRecord) {
  return { ip: ip.ip, region: ip.region, shared: ip.shared, service_name: ip.serviceName, created_at: ip.createdAt };
}

export function registerAppResources(routes: RouteTable, rt: Runtime): void {
  // ---- secrets -------------------------------------------------------------------------------
  routes.add('GET', `${A}/secrets`, (req) => json({ secrets: listSecrets(rt.app(req.params.app)) }));

  routes.add('POST', `${A}/secrets`, (req) => {
    const app = rt.app(req.params.app);
    const { values } = parseBody(secretsBody, req.body);
    const now = new Date().toISOString();
    Object.keys(values).forEach(assertSecretName); // all or nothing
    for (const [name, value] of Object.entries(values)) setSecret(app, name, value, now);
    app.secretsVersion += 1;
    rt.store.changed();
    return json({ version: app.secretsVersion, secrets: listSecrets(app) });
  });

  routes.add('POST', `${A}/secrets/:name`, (req) => {
    const app = rt.app(req.params.app);
    const { value } = parseBody(metadataValueBody, req.body);
    assertSecretName(req.params.name);
    const now = new Date().toISOString();
    setSecret(app, req.params.name, value, now);
    app.secretsVersion += 1;
    rt.store.changed();
    const s = app.secrets[req.params.name];
    return json({ name: req.params.name, digest: s.digest, created_at: s.createdAt, updated_at: s.updatedAt, version: app.secretsVersion }, 201);
  });

  routes.add('DELETE', `${A}/secrets/:name`, (req) => {
    const app = rt.app(req.params.app);
    if (!app.secrets[req.params.name]) throw notFound(`app "${app.name}" has no secret ${req.params.name}`);
    delete app.secrets[req.params.name];
    app.secretsVersion += 1;
    rt.store.changed();
    return json({ version: app.secretsVersion });
  });

  // ---- certificates --------------------------------------------------------------------------
  routes.add('POST', `${A}/certificates/acme`, async (req) => {
    const app = rt.app(req.params.app);
    const raw = parseBody(certificateBody, req.body).hostname;
    const hostname = normalizeHostname(raw);
    if (!hostname) throw unprocessable(`"${raw}" is not a valid hostname`);
    const owner = Object.values(rt.store.state.apps).find((a) => a.name !== app.name && a.certificates[hostname]);
    if (owner) throw unprocessable(`${hostname} is already a domain of another app`);
    const now = new Date().toISOString();
    const cert = app.certificates[hostname] ?? { hostname, status: 'pending_validation', createdAt: now, updatedAt: now, resolved: [] };
    app.certificates[hostname] = cert;
    await refreshCertificate(cert, rt.resolveHost);
    rt.store.changed();
    return json(presentCertificate(cert), 201);
  });

  routes.add('GET', `${A}/certificates`, (req) => {
    const app = rt.app(req.params.app);
    const filter = req.query.get('filter') ?? '';
    const limit = queryInt(req.query, 'limit', 1, 500) ?? 25;
    const all = Object.values(app.certificates)
      .filter((c) => c.hostname.includes(filter))
      .sort((a, b) => a.hostname.localeCompare(b.hostname));
    const after = req.query.get('cursor');
    const rest = after ? all.filter((c) => c.hostname > after) : all;
    const page = rest.slice(0, limit);
    return json({
      certificates: page.map(presentCertificateSummary),
      total_count: all.length,
      ...(rest.length > page.length ? { next_cursor: page[page.length - 1].hostname } : {}),
    });
  });

  routes.add('GET', `${A}/certificates/:hostname`, async (req) => {
    const cert = certificate(rt, req.params.app, req.params.hostname);
    if (await refreshCertificate(cert, rt.resolveHost)) rt.store.changed();
    return json(presentCertificate(cert));
  });

  routes.add('POST', `${A}/certificates/:hostname/check`, async (req) => {
    const cert = certificate(rt, req.params.app, req.params.hostname);
    if (await refreshCertificate(cert, rt.resolveHost)) rt.store.changed();
    return json(presentCertificateCheck(cert));
  });

  routes.add('DELETE', `${A}/certificates/:hostname`, (req) => {
    const cert = certificate(rt, req.params.app, req.params.hostname);
    delete rt.app(req.params.app).certificates[cert.hostname];
    rt.store.changed();
    return empty(204);
  });

  // ---- IP assignments ------------------------------------------------------------------------
  routes.add('GET', `${A}/ip_assignments`, (req) => json({ ips: rt.app(req.params.app).ips.map(presentIp) }));

  routes.add('POST', `${A}/ip_assignments`, (req) => {
    const app = rt.app(req.params.app);
    const body = parseBody(ipBody, req.body);
    const { ip, shared } = ipFor(body.type);
    let record = app.ips.find((r) => r.ip === ip && r.type === body.type);
    if (!record) {
      record = { ip, type: body.type, shared, region: body.region ?? LOCAL_REGION, serviceName: body.service_name, createdAt: new Date().toISOString() };
      app.ips.push(record);
      rt.store.changed();
    }
    return json(presentIp(record));
  });

  routes.add('DELETE', `${A}/ip_assignments/:ip`, (req) => {
    const app = rt.app(req.params.app);
    const before = app.ips.length;
    app.ips = app.ips.filter((r) => r.ip !== req.params.ip);
    if (app.ips.length === before) throw notFound(`app "${app.name}" has no IP ${req.params.ip}`);
    rt.store.changed();
    return empty(204);
  });

  // ---- deploy tokens ---------------------------------------------------------------------------
  // POST /v1/apps/{app}/deploy_token (App_create_deploy_token): a token for one existing app, as
  // Fly mints it ("deploy tokens are limited to a single application", docs reference/deploy-tokens).
  // `expiry` is a Go duration, the form flyctl sends (`fly tokens create deploy --expiry`); a bad
  // one is a 400 here. Nothing local takes the token (there is no registry here: images are
  // imported into the artifact store), so it is minted and not kept; the API still wants the
  // install's token (local/token.ts).
  routes.add('POST', `${A}/deploy_token`, (req) => {
    rt.app(req.params.app);
    parseBody(deployTokenBody, req.body);
    return json({ token: `FlyV1 fm2_local_${randomBytes(24).toString('base64url')}` });
  });

  // ---- local extension: what the router sent to clients, for billing -------------------------
  routes.add('GET', `${A}/local/bandwidth`, (req) => json({ bytes_out: rt.bytesOut(rt.app(req.params.app).name) }));

  // ---- local extension: the router's WebSocket connections, for a release's drain figures -----
  // ?machine=ID (repeatable, or a comma list): the machines drained; since=<ms since the epoch>:
  // count closes from then on; window=<s>: how long after a close a reconnect counts (default 10).
  routes.add('GET', `${A}/local/connections`, (req) => {
    const app = rt.app(req.params.app);
    const machines = queryList(req.query, 'machine');
    if (machines.length === 0) throw badRequest('machine is required: the id of a machine of the app (repeat it, or separate ids with commas, for several)');
    for (const id of machines) rt.machine(app.name, id);
    const since = queryInt(req.query, 'since', 0, Number.MAX_SAFE_INTEGER);
    const windowS = queryInt(req.query, 'window', 1, 300);
    const r = rt.connections.report(app.name, machines, { since, windowMs: windowS === undefined ? RECONNECT_WINDOW_MS : windowS * 1000 });
    return json({
      machines,
      open: r.open,
      drained: r.drained,
      cut: r.cut,
      closed_by_client: r.closedByClient,
      reconnected: r.reconnected,
      reconnect_ms: r.reconnectMs,
      window_ms: r.windowMs,
      settled: r.settled,
    });
  });
}
