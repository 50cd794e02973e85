// A fake of Fly's certificates API (and the app and IP calls a custom domain needs), in the shape
// of Fly's spec: every request it gets and every answer it gives is checked against the spec, and
// a mismatch is recorded (and answered 500) so the test fails. A certificate walks through the
// `steps` one per check call; `tooManyRequests` answers the next n certificate calls with a 429.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CertificateDetail } from '../../backend/providers/fly/types.ts';
import { findPathTemplate, validateRequest, validateResponse } from './fly-spec.ts';

export interface Step {
  status: 'pending_validation' | 'pending_ownership' | 'active';
  validation?: NonNullable<CertificateDetail['validation']>;
  rateLimitedUntil?: string;
}

/** A certificate's way to issued, as docs/domains.md describes Fly's: no DNS yet, then DNS right but no ownership proof, then issued. */
export const DEFAULT_STEPS: Step[] = [
  { status: 'pending_validation', validation: { dns_configured: false, alpn_configured: false, http_configured: false, ownership_txt_configured: false } },
  { status: 'pending_ownership', validation: { dns_configured: true, alpn_configured: false, http_configured: false, ownership_txt_configured: false } },
  { status: 'active', validation: { dns_configured: true, alpn_configured: true, http_configured: true, ownership_txt_configured: true } },
];

interface Cert {
  app: string;
  hostname: string;
  step: number;
}

export interface FakeFly {
  url: string;
  apps: Set<string>;
  certs: Map<string, Cert>;
  ips: Map<string, { ip: string; shared: boolean }[]>;
  steps: Step[];
  tooManyRequests: number;
  requests: { method: string; path: string; body: unknown; status: number }[];
  /** Requests or answers that did not match Fly's spec. */
  specProblems: string[];
  close(): Promise<void>;
}

export function certificateDetail(app: string, hostname: string, step: Step): CertificateDetail {
  const base = hostname.replace(/^\*\./, '');
  const active = step.status === 'active';
  return {
    hostname,
    configured: active,
    acme_requested: true,
    status: step.status,
    ...(step.rateLimitedUntil ? { rate_limited_until: step.rateLimitedUntil } : {}),
    certificates: active ? [{ source: 'fly', status: 'active', issuer: "Let's Encrypt R11", expires_at: '2027-02-25T00:00:00Z' }] : [],
    dns_requirements: {
      a: ['66.241.124.10'],
      aaaa: ['2a09:8280:1::4e:1'],
      cname: `${app}.fly.dev`,
      acme_challenge: { name: `_acme-challenge.${base}`, target: `${base}.k3x9.flydns.net` },
      ownership: { name: `_fly-ownership.${base}`, app_value: 'app-7xq2', org_value: 'org-rhone' },
    },
    validation: step.validation ?? {},
    validation_errors: active
      ? []
      : [
          {
            code: 'dns_not_configured',
            message: `${hostname} does not resolve to this app`,
            remediation: `Add a CNAME record for ${hostname} pointing to ${app}.fly.dev`,
          },
        ],
  };
}

export async function startFakeFly(): Promise<FakeFly> {
  const fake: Omit<FakeFly, 'url' | 'close'> = {
    apps: new Set(),
    certs: new Map(),
    ips: new Map(),
    steps: DEFAULT_STEPS,
    tooManyRequests: 0,
    requests: [],
    specProblems: [],
  };

  function route(method: string, path: string, body: unknown): { status: number; body?: unknown; headers?: Record<string, string> } {
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent); // v1 apps {app} ...
    if (method === 'POST' && path === '/v1/apps') {
      const name = (body as { name: string }).name;
      fake.apps.add(name);
      return { status: 201, body: { id: `id-${name}`, created_at: Date.now() } };
    }
    const app = parts[2];
    if (!fake.apps.has(app)) return { status: 404, body: { error: `app ${app} not found` } };
    if (parts.length === 3 && method === 'GET') return { status: 200, body: { id: `id-${app}`, name: app, status: 'pending' } };
    if (parts[3] === 'ip_assignments') {
      const ips = fake.ips.get(app) ?? [];
      if (method === 'GET') return { status: 200, body: { ips } };
      const type = (body as { type: string }).type;
      const ip = type === 'v6' ? { ip: '2a09:8280:1::4e:1', shared: false } : { ip: '66.241.124.10', shared: true };
      fake.ips.set(app, [...ips, ip]);
      return { status: 200, body: ip };
    }
    if (parts[3] !== 'certificates') return { status: 404, body: { error: 'not faked' } };
    if (fake.tooManyRequests > 0) {
      fake.tooManyRequests--;
      return { status: 429, body: { error: 'rate limit exceeded' }, headers: { 'retry-after': '1' } };
    }
    if (method === 'POST' && parts[4] === 'acme') {
      const hostname = (body as { hostname: string }).hostname;
      const owner = [...fake.certs.values()].find((c) => c.hostname === hostname && c.app !== app);
      if (owner) return { status: 422, body: { error: `${hostname} is already in use by another app` } };
      const cert = fake.certs.get(`${app}/${hostname}`) ?? { app, hostname, step: 0 };
      fake.certs.set(`${app}/${hostname}`, cert);
      return { status: 201, body: certificateDetail(app, hostname, fake.steps[cert.step]) };
    }
    const cert = fake.certs.get(`${app}/${parts[4]}`);
    if (!cert) return { status: 404, body: { error: `no certificate for ${parts[4]}` } };
    if (method === 'DELETE') {
      fake.certs.delete(`${app}/${parts[4]}`);
      return { status: 204 };
    }
    if (method === 'POST' && parts[5] === 'check') cert.step = Math.min(cert.step + 1, fake.steps.length - 1);
    return { status: 200, body: certificateDetail(app, cert.hostname, fake.steps[cert.step]) };
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://fake').pathname;
      const method = req.method ?? 'GET';
      const text = Buffer.concat(chunks).toString('utf8');
      const body = text ? JSON.parse(text) : undefined;
      const template = findPathTemplate(method, path);
      let answer: { status: number; body?: unknown; headers?: Record<string, string> };
      try {
        if (!template) throw new Error(`${method} ${path} is not in Fly's spec`);
        validateRequest(method, template, body);
        answer = route(method, path, body);
        validateResponse(method, template, answer.status, answer.body);
      } catch (err) {
        fake.specProblems.push((err as Error).message);
        answer = { status: 500, body: { error: (err as Error).message } };
      }
      fake.requests.push({ method, path, body, status: answer.status });
      res.writeHead(answer.status, { ...(answer.body === undefined ? {} : { 'content-type': 'application/json' }), ...answer.headers });
      res.end(answer.body === undefined ? undefined : JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(fake, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  });
}
