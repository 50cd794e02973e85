// A proxy in front of a Machines API server that misbehaves on purpose, the way Fly can: 429s
// with and without Retry-After, 503s, a 408 after the request really took effect, a connection
// dropped before or after the work was done. It records every request the client sent.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault =
  | { kind: 'status'; status: number; retryAfter?: string; body?: unknown }
  | { kind: 'drop-before' }
  | { kind: 'drop-after' }
  | { kind: 'status-after'; status: number };

export interface Rule {
  method: string;
  /** Matched against the path without the query string. */
  path: RegExp;
  fault: Fault;
  /** How many matching requests it applies to. */
  times: number;
  /** Narrows the rule to requests whose query string matches, e.g. a lookup by one metadata key. */
  query?: (query: URLSearchParams) => boolean;
}

export interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: unknown;
  fault?: Fault['kind'];
  /** What the upstream answered, when the request reached it and the answer was passed on. */
  response?: { status: number; body: unknown };
}

export interface ChaosProxy {
  url: string;
  rules: Rule[];
  requests: Recorded[];
  close(): Promise<void>;
}

function forward(upstream: URL, req: http.IncomingMessage, body: Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const out = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    out.on('error', reject);
    out.end(body);
  });
}

export async function startChaosProxy(upstreamUrl: string): Promise<ChaosProxy> {
  const upstream = new URL(upstreamUrl);
  const rules: Rule[] = [];
  const requests: Recorded[] = [];
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://x');
    let body: unknown = undefined;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        body = raw.toString('utf8');
      }
    }
    const rule = rules.find((r) => r.times > 0 && r.method === req.method && r.path.test(url.pathname) && (!r.query || r.query(url.searchParams)));
    if (rule) rule.times -= 1;
    const record: Recorded = { method: req.method ?? '', path: url.pathname, query: url.searchParams, headers: req.headers, body, fault: rule?.fault.kind };
    requests.push(record);
    const fault = rule?.fault;
    try {
      if (fault?.kind === 'status') {
        res.writeHead(fault.status, { 'content-type': 'application/json', ...(fault.retryAfter ? { 'retry-after': fault.retryAfter } : {}) });
        res.end(JSON.stringify(fault.body ?? { error: `injected ${fault.status}` }));
        return;
      }
      if (fault?.kind === 'drop-before') {
        req.socket.destroy();
        return;
      }
      const answer = await forward(upstream, req, raw);
      if (fault?.kind === 'drop-after') {
        req.socket.destroy();
        return;
      }
      if (fault?.kind === 'status-after') {
        res.writeHead(fault.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: `injected ${fault.status} after the work was done` }));
        return;
      }
      const text = answer.body.toString('utf8');
      let parsed: unknown = undefined;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        parsed = text;
      }
      record.response = { status: answer.status, body: parsed };
      const headers = { ...answer.headers };
      delete headers['transfer-encoding'];
      delete headers.connection;
      res.writeHead(answer.status, headers);
      res.end(answer.body);
    } catch (err) {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: (err as Error).message }));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    rules,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
