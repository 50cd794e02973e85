// examples/hello-node and examples/hello-go, the apps the demo and the release tests deploy:
// /health, /release, the page, the hand-written WebSocket at /_vango/ws (handshake, ping → pong,
// control pings, fragments, a 70 KB echo, protocol errors) and the SIGTERM drain that blue/green
// releases rely on. hello-go is built and run only where a Go toolchain is on PATH; elsewhere its
// tests are skipped, saying so.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';

const root = path.resolve(import.meta.dirname, '..');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface AppKind {
  name: string;
  /** The folder holding the runnable file (server.js, or the built binary). */
  dir: string;
  /** That file's name inside dir. */
  file: string;
  command(dir: string): { cmd: string; args: string[] };
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

interface App {
  child: ChildProcess;
  port: number;
  base: string;
  exited: Promise<Exit>;
  output(): string;
}

const children = new Set<ChildProcess>();
const tempDirs: string[] = [];

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts the app and waits for /health; release null leaves RHONE_RELEASE unset. */
async function startApp(kind: AppKind, opts: { dir?: string; release?: string | null } = {}): Promise<App> {
  const port = await freePort();
  const dir = opts.dir ?? kind.dir;
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, PORT: String(port) };
  if (opts.release !== null) env.RHONE_RELEASE = opts.release ?? 'v1';
  const { cmd, args } = kind.command(dir);
  const child = spawn(cmd, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<Exit>((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal, at: Date.now() });
    });
  });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${kind.name} exited early:\n${out}`);
    try {
      const res = await fetch(`${base}/health`);
      await res.text();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${kind.name} did not answer /health within 10 s:\n${out}`);
    await sleep(50);
  }
  return { child, port, base, exited, output: () => out };
}

interface Client {
  ws: WebSocket;
  next(): Promise<string | Buffer>;
  closed: Promise<{ code: number; reason: string }>;
}

/** A `ws` client that queues what it receives, so no message is missed between awaits. */
async function connect(port: number): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/_vango/ws`);
  const queue: (string | Buffer)[] = [];
  const waiters: ((m: string | Buffer) => void)[] = [];
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    const message = isBinary ? data : data.toString('utf8');
    const waiter = waiters.shift();
    if (waiter) waiter(message);
    else queue.push(message);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const next = () =>
    new Promise<string | Buffer>((resolve, reject) => {
      if (queue.length) return resolve(queue.shift()!);
      const timer = setTimeout(() => reject(new Error('no WebSocket message within 5 s')), 5000);
      waiters.push((m) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
  return { ws, next, closed };
}

/** A raw TCP connection to the app, collecting everything it receives. */
async function rawSocket(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let received = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  const waitFor = async (test: (b: Buffer) => boolean, what: string) => {
    const deadline = Date.now() + 5000;
    while (!test(received)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(received.toString('latin1'))}`);
      await sleep(10);
    }
    return received;
  };
  return { socket, ended, waitFor, received: () => received };
}

function copyTo(kind: AppKind, release?: string): string {
  const dir = tempDir(`rhone-${kind.name}-`);
  copyFileSync(path.join(kind.dir, kind.file), path.join(dir, kind.file));
  chmodSync(path.join(dir, kind.file), 0o755);
  if (release !== undefined) writeFileSync(path.join(dir, 'RELEASE'), `${release}\n`);
  return dir;
}

function appTests(getKind: () => AppKind) {
  afterEach(() => {
    for (const child of children) child.kill('SIGKILL');
  });

  it('serves /health, /release and a page showing its release, host and pid', async () => {
    const app = await startApp(getKind());
    let res = await fetch(`${app.base}/health`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'ok');

    res = await fetch(`${app.base}/release`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    assert.deepEqual(await res.json(), { release: 'v1', pid: app.child.pid });

    res = await fetch(`${app.base}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    const html = await res.text();
    assert.match(html, /<code id="release">v1<\/code>/);
    assert.ok(html.includes(os.hostname()), 'the page names the host');
    assert.ok(html.includes(String(app.child.pid)), 'the page shows the pid');
    assert.ok(html.includes('/_vango/ws') && html.includes('new WebSocket('), 'the page opens the WebSocket');

    res = await fetch(`${app.base}/no-such-page`);
    assert.equal(res.status, 404);
    await res.text();
    res = await fetch(`${app.base}/_vango/ws`);
    assert.equal(res.status, 400, 'a plain GET of the WebSocket path is refused');
    await res.text();
  });

  it('speaks WebSocket at /_vango/ws: ping → pong, control pings, fragments, binary and a 70 KB echo', async () => {
    const app = await startApp(getKind());
    const client = await connect(app.port);
    const { ws, next } = client;

    ws.send('ping');
    assert.equal(await next(), 'pong v1');

    const pong = new Promise<string>((resolve) => ws.once('pong', (data) => resolve(data.toString())));
    ws.ping('are you there');
    assert.equal(await pong, 'are you there');

    const medium = 'm'.repeat(300); // 16-bit lengths both ways
    ws.send(medium);
    assert.equal(await next(), `echo ${medium}`);

    let big = '';
    while (Buffer.byteLength(big) < 70 * 1024) big += 'Rhone ⛵ déploie ';
    ws.send(big); // 64-bit lengths both ways
    assert.equal(await next(), `echo ${big}`);

    ws.send('frag', { fin: false });
    ws.send('mented ', { fin: false });
    ws.send('hello', { fin: true });
    assert.equal(await next(), 'echo fragmented hello');

    const bytes = randomBytes(1000);
    ws.send(bytes);
    assert.deepEqual(await next(), bytes);

    ws.close(1000, 'bye');
    assert.deepEqual(await client.closed, { code: 1000, reason: '' });

    const wrongPath = new WebSocket(`ws://127.0.0.1:${app.port}/elsewhere`);
    const err = await new Promise<Error>((resolve) => wrongPath.once('error', resolve));
    assert.match(err.message, /Unexpected server response: 404/);
  });

  it('answers the RFC 6455 sample handshake exactly and closes with 1002 on an unmasked frame', async () => {
    const app = await startApp(getKind());
    const raw = await rawSocket(app.port);
    raw.socket.write(
      'GET /_vango/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    const head = (await raw.waitFor((b) => b.includes('\r\n\r\n'), 'the handshake response')).toString('latin1');
    assert.match(head, /^HTTP\/1\.1 101 /);
    assert.match(head, /\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/i);
    const start = head.indexOf('\r\n\r\n') + 4;

    raw.socket.write(Buffer.from([0x81, 0x04, ...Buffer.from('ping')])); // a text frame without a mask
    const frames = await raw.waitFor((b) => b.length >= start + 4, 'a close frame');
    assert.equal(frames[start], 0x88, 'a final close frame');
    assert.equal(frames.readUInt16BE(start + 2), 1002);
    await raw.ended;
  });

  it('drains on SIGTERM: fails /health, tells clients to reconnect, closes them with 1012 and exits 0 within 6 s', async () => {
    const app = await startApp(getKind());
    const clients = [await connect(app.port), await connect(app.port)];
    for (const c of clients) {
      c.ws.send('ping');
      assert.equal(await c.next(), 'pong v1');
    }
    // A request whose headers are half sent: in flight when SIGTERM lands, answered after it.
    const inFlight = await rawSocket(app.port);
    inFlight.socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    await sleep(100);

    const signalledAt = Date.now();
    app.child.kill('SIGTERM');
    for (const c of clients) {
      assert.equal(await c.next(), '{"type":"reconnect"}');
      assert.equal((await c.closed).code, 1012);
    }

    inFlight.socket.write('\r\n');
    await inFlight.ended;
    const response = inFlight.received().toString('latin1');
    assert.match(response, /^HTTP\/1\.1 503 /, `expected 503 from /health while draining, got ${JSON.stringify(response)}`);

    const exit = await Promise.race([app.exited, sleep(6000).then(() => null)]);
    assert.ok(exit, `${getKind().name} still running 6 s after SIGTERM:\n${app.output()}`);
    assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null });
    assert.ok(exit.at - signalledAt < 6000);
    await assert.rejects(fetch(`${app.base}/health`), 'nothing listens after the exit');
  });

  it('exits promptly on SIGINT, even with a client connected', async () => {
    const app = await startApp(getKind());
    const client = await connect(app.port);
    const signalledAt = Date.now();
    app.child.kill('SIGINT');
    const exit = await Promise.race([app.exited, sleep(2000).then(() => null)]);
    assert.ok(exit, `${getKind().name} still running 2 s after SIGINT`);
    assert.equal(exit.code, 0);
    assert.ok(exit.at - signalledAt < 2000);
    await client.closed;
  });

  it('takes its release from RHONE_RELEASE, else a RELEASE file next to it, else "dev"', async () => {
    const kind = getKind();
    const release = async (dir: string, env: string | null) => {
      const app = await startApp(kind, { dir, release: env });
      const body = (await (await fetch(`${app.base}/release`)).json()) as { release: string };
      app.child.kill('SIGKILL');
      await app.exited;
      return body.release;
    };
    const withFile = copyTo(kind, 'from-file');
    assert.equal(await release(withFile, null), 'from-file');
    assert.equal(await release(withFile, 'v2'), 'v2');
    assert.equal(await release(copyTo(kind), null), 'dev');
  });
}

after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe('examples/hello-node', function () {
  this.timeout(30_000);
  const dir = path.join(root, 'examples', 'hello-node');
  appTests(() => ({
    name: 'hello-node',
    dir,
    file: 'server.js',
    command: (d) => ({ cmd: process.execPath, args: [path.join(d, 'server.js')] }),
  }));
});

describe('examples/hello-go', function () {
  this.timeout(30_000);
  let kind: AppKind | undefined;

  before(function () {
    const probe = spawnSync('go', ['version'], { encoding: 'utf8' });
    if (probe.error || probe.status !== 0) {
      const why = 'skipped: no Go toolchain found (`go` is not on PATH)';
      for (const test of this.test!.parent!.tests) test.title += ` (${why})`;
      this.skip();
    }
    this.timeout(300_000);
    const out = tempDir('rhone-hello-go-build-');
    const build = spawnSync('go', ['build', '-o', path.join(out, 'hello-go'), '.'], {
      cwd: path.join(root, 'examples', 'hello-go'),
      env: { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' },
      encoding: 'utf8',
    });
    assert.equal(build.status, 0, `go build failed:\n${build.stdout}${build.stderr}`);
    kind = {
      name: 'hello-go',
      dir: out,
      file: 'hello-go',
      command: (d) => ({ cmd: path.join(d, 'hello-go'), args: [] }),
    };
  });

  appTests(() => kind!);
});
