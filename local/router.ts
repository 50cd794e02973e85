// The local router: Host `{label}.localhost` (or any hostname with an active certificate) → the
// app's started, uncordoned machines whose service checks pass, round-robin. A request that
// cannot reach its machine before any answer (refused, reset) is retried on another one when its
// body is empty or small enough to have been buffered, so a machine leaving loses no request.
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { isFlyAppNameOfSlug } from '../backend/providers/fly/names.ts';
import { badGatewayPage, noHealthyMachinePage, notDeployedPage, rawResponse, type RouterPage } from './router-pages.ts';
import type { Runtime } from './runtime.ts';
import type { MachineRecord } from './store.ts';
import { CloseFrameWatch } from './ws-close-watch.ts';

const BUFFERED_BODY_MAX = 64 * 1024;
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
];

export function hostOf(header: string | undefined): string {
  const h = (header ?? '').trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  return h.replace(/:\d+$/, '').replace(/\.$/, '');
}

export class Router {
  private readonly turns = new Map<string, number>();
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 512, keepAliveMsecs: 1_000 });

  constructor(
    private readonly rt: Runtime,
    private readonly port: () => number,
  ) {}

  /** The Fly app a Host header names, or undefined. */
  appFor(host: string): string | undefined {
    // A custom domain: the hostname itself, else a wildcard one label up.
    const wildcard = `*.${host.slice(host.indexOf('.') + 1)}`;
    for (const name of [host, wildcard]) {
      for (const app of Object.values(this.rt.store.state.apps)) {
        if (app.certificates[name]?.status === 'active') return app.name;
      }
    }
    const suffix = `.${this.rt.appsDomain}`;
    if (!host.endsWith(suffix)) return undefined;
    const label = host.slice(0, -suffix.length);
    if (!label || label.includes('.')) return undefined;
    // `{slug}.localhost` stands in for `{slug}.rhone.app`: the app Rhone named for that slug
    // (providers/fly/names.ts). While a deleted app's teardown runs, its successor may exist too;
    // the newest one is the live app.
    const named = Object.values(this.rt.store.state.apps).filter((a) => isFlyAppNameOfSlug(a.name, label));
    return named.sort((a, b) => b.createdAt - a.createdAt)[0]?.name;
  }

  /** The next healthy machine of the app in turn, skipping those already tried. */
  pick(app: string, tried: Set<string>): MachineRecord | undefined {
    const healthy = this.rt
      .machinesOf(app)
      .filter((m) => this.rt.supervisor.routable(m))
      .sort((a, b) => a.id.localeCompare(b.id));
    const left = healthy.filter((m) => !tried.has(m.id));
    if (left.length === 0) return undefined;
    const turn = this.turns.get(app) ?? 0;
    this.turns.set(app, turn + 1);
    return left[turn % left.length];
  }

  forwardedHeaders(headers: IncomingHttpHeaders, remote: string | undefined): IncomingHttpHeaders {
    const out: IncomingHttpHeaders = { ...headers };
    for (const h of HOP_BY_HOP) delete out[h];
    const client = (remote ?? '').replace(/^::ffff:/, '');
    const prior = headers['x-forwarded-for'];
    out['x-forwarded-for'] = prior ? `${prior}, ${client}` : client;
    out['x-forwarded-host'] ??= headers.host;
    out['x-forwarded-proto'] ??= 'http';
    out['x-forwarded-port'] ??= String(this.port());
    out['fly-client-ip'] = client;
    return out;
  }

  close(): void {
    this.agent.destroy();
  }

  // ---- HTTP ----------------------------------------------------------------------------------

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const host = hostOf(req.headers.host);
    const app = this.appFor(host);
    if (!app) return sendPage(res, notDeployedPage(host));
    const tried = new Set<string>();
    const first = this.pick(app, tried);
    if (!first) return sendPage(res, noHealthyMachinePage(app));

    const length = Number(req.headers['content-length'] ?? 0);
    const streamed = req.headers['transfer-encoding'] !== undefined || !(length <= BUFFERED_BODY_MAX);
    let body: Buffer | undefined;
    if (!streamed) {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      body = Buffer.concat(chunks);
    }
    const headers = this.forwardedHeaders(req.headers, req.socket.remoteAddress);
    if (body && (body.length > 0 || req.headers['content-length'] !== undefined)) headers['content-length'] = String(body.length);

    const attempt = (m: MachineRecord): void => {
      tried.add(m.id);
      let answered = false;
      const upstream = http.request({ host: '127.0.0.1', port: m.primaryPort, method: req.method, path: req.url, headers, agent: this.agent });
      res.once('close', () => {
        if (!res.writableFinished) upstream.destroy();
      });
      upstream.on('response', (ures) => {
        answered = true;
        const raw: string[] = [];
        for (let i = 0; i < ures.rawHeaders.length; i += 2) {
          if (!HOP_BY_HOP.includes(ures.rawHeaders[i].toLowerCase())) raw.push(ures.rawHeaders[i], ures.rawHeaders[i + 1]);
        }
        let bytes = 16 + raw.reduce((n, s) => n + s.length + 2, 0);
        res.writeHead(ures.statusCode ?? 502, ures.statusMessage, raw);
        ures.on('data', (chunk: Buffer) => (bytes += chunk.length));
        ures.on('end', () => this.rt.addBytesOut(app, bytes));
        ures.on('error', () => res.destroy());
        ures.pipe(res);
      });
      upstream.on('error', (err) => {
        if (answered || res.headersSent) return void res.destroy();
        const next = !streamed && !res.destroyed ? this.pick(app, tried) : undefined;
        if (next) return attempt(next);
        sendPage(res, badGatewayPage(app, err.message));
      });
      if (body) upstream.end(body);
      else req.pipe(upstream);
    };
    attempt(first);
  }

  // ---- WebSocket and other upgrades ----------------------------------------------------------

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const host = hostOf(req.headers.host);
    const app = this.appFor(host);
    socket.on('error', () => socket.destroy());
    if (!app) return void socket.end(rawResponse(notDeployedPage(host)));
    const tried = new Set<string>();
    const first = this.pick(app, tried);
    if (!first) return void socket.end(rawResponse(noHealthyMachinePage(app)));

    const headers = this.forwardedHeaders(req.headers, (socket as net.Socket).remoteAddress);
    headers.connection = 'Upgrade';
    headers.upgrade = req.headers.upgrade;
    let lines = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(headers)) {
      for (const value of Array.isArray(v) ? v : v === undefined ? [] : [v]) lines += `${k}: ${value}\r\n`;
    }
    const requestHead = Buffer.concat([Buffer.from(`${lines}\r\n`), head]);

    const attempt = (m: MachineRecord): void => {
      tried.add(m.id);
      const upstream = net.connect({ host: '127.0.0.1', port: m.primaryPort as number });
      let settled = false;
      // Until the machine answers, nothing has reached the client: another machine may be tried.
      const retry = (reason: string) => {
        if (settled) return;
        settled = true;
        upstream.destroy();
        const next = socket.destroyed ? undefined : this.pick(app, tried);
        if (next) return attempt(next);
        socket.end(rawResponse(badGatewayPage(app, reason)));
      };
      upstream.once('connect', () => upstream.write(requestHead));
      upstream.once('data', (chunk: Buffer) => {
        if (settled) return;
        settled = true;
        // Only an accepted upgrade is a connection; a refusal (a draining app's 503) is an answer.
        if (chunk.subarray(0, 13).toString('latin1') === 'HTTP/1.1 101 ') this.track(req, head, app, m.id, socket as net.Socket, upstream, chunk);
        this.rt.addBytesOut(app, chunk.length);
        socket.write(chunk);
        upstream.on('data', (more: Buffer) => this.rt.addBytesOut(app, more.length));
        upstream.pipe(socket);
        socket.pipe(upstream);
        upstream.on('error', () => socket.destroy());
        upstream.on('close', () => socket.destroy());
        socket.on('close', () => upstream.destroy());
        // Either side finishing ends the connection both ways, once what is in flight is written:
        // half-open pairs (FIN-WAIT-2 on one side, CLOSE-WAIT on the other) would otherwise live
        // until the app's idle timeout, and count twice in a drain. Fly's proxy closes both too.
        const closeBoth = () => {
          (socket as net.Socket).destroySoon();
          upstream.destroySoon();
        };
        socket.once('end', closeBoth);
        upstream.once('end', closeBoth);
      });
      upstream.on('error', (err) => retry(err.message));
      upstream.on('close', () => retry('the machine closed the connection before answering'));
    };
    attempt(first);
  }

  /**
   * Counts the connection on its machine, and which side closed it (local/connections.ts). Called
   * with the machine's first chunk, before it is passed on, so the close watch sees every byte.
   */
  private track(req: IncomingMessage, head: Buffer, app: string, machine: string, socket: net.Socket, upstream: net.Socket, first: Buffer): void {
    const conn = this.rt.connections.opened(app, machine, (socket.remoteAddress ?? '').replace(/^::ffff:/, ''));
    if (String(req.headers.upgrade).toLowerCase() === 'websocket') {
      const fromApp = new CloseFrameWatch({ afterHttpHead: true });
      const fromClient = new CloseFrameWatch({ afterHttpHead: false });
      const watchApp = (chunk: Buffer) => {
        if (fromApp.feed(chunk)) this.rt.connections.closeFrame(conn, 'app');
      };
      const watchClient = (chunk: Buffer) => {
        if (fromClient.feed(chunk)) this.rt.connections.closeFrame(conn, 'client');
      };
      watchClient(head);
      watchApp(first);
      upstream.on('data', watchApp);
      socket.on('data', watchClient);
    }
    const byApp = () => this.rt.connections.closed(conn, 'app');
    const byClient = () => this.rt.connections.closed(conn, 'client');
    upstream.once('end', byApp);
    upstream.once('close', byApp);
    socket.once('end', byClient);
    socket.once('close', byClient);
  }
}

function sendPage(res: ServerResponse, page: RouterPage): void {
  if (res.headersSent) return void res.destroy();
  res.writeHead(page.status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(page.html);
}

export function createRouterServer(router: Router): http.Server {
  const server = http.createServer((req, res) => {
    router.handle(req, res).catch(() => res.destroy());
  });
  server.on('upgrade', (req, socket, head) => router.upgrade(req, socket, head));
  server.on('clientError', (_err, socket) => socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n'));
  return server;
}
