// Fixtures for the source tests: a bare repository with known history, and an HTTP server in
// front of it (git http-backend as CGI) that demands Basic auth and watches every process's argv.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface TestRepo {
  root: string;
  /** Holds app.git: GIT_PROJECT_ROOT for the HTTP server. */
  serveDir: string;
  fileUrl: string;
  first: string;
  second: string;
  feature: string;
}

export function gitEnv(home: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: home, GIT_CONFIG_NOSYSTEM: '1', LC_ALL: 'C' };
}

/** main: first ← second; feature: second ← feature; annotated tag v1 on first. */
export function makeRepo(root: string): TestRepo {
  const home = path.join(root, 'home');
  const serveDir = path.join(root, 'srv');
  const work = path.join(root, 'work');
  mkdirSync(home, { recursive: true });
  mkdirSync(serveDir, { recursive: true });
  const env = gitEnv(home);
  const git = (cwd: string, ...args: string[]) =>
    execFileSync('git', ['-c', 'user.name=Test Author', '-c', 'user.email=test@example.com', ...args], { cwd, env, encoding: 'utf8' }).trim();

  git(serveDir, 'init', '-q', '--bare', '-b', 'main', 'app.git');
  mkdirSync(work);
  git(work, 'init', '-q', '-b', 'main');
  writeFileSync(path.join(work, 'README.md'), '# app\n');
  writeFileSync(path.join(work, 'hello.txt'), 'v1\n');
  git(work, 'add', '.');
  git(work, 'commit', '-q', '-m', 'First commit', '-m', 'With a body line.');
  const first = git(work, 'rev-parse', 'HEAD');
  writeFileSync(path.join(work, 'hello.txt'), 'v2\n');
  writeFileSync(path.join(work, 'second.txt'), 'only in the second commit\n');
  git(work, 'add', '.');
  git(work, 'commit', '-q', '-m', 'Second commit');
  const second = git(work, 'rev-parse', 'HEAD');
  git(work, 'checkout', '-q', '-b', 'feature');
  writeFileSync(path.join(work, 'feature.txt'), 'feature\n');
  git(work, 'add', '.');
  git(work, 'commit', '-q', '-m', 'Feature commit');
  const feature = git(work, 'rev-parse', 'HEAD');
  git(work, 'tag', '-a', 'v1', '-m', 'release v1', first);
  const bare = path.join(serveDir, 'app.git');
  git(work, 'push', '-q', bare, 'main', 'feature', 'v1');
  return { root, serveDir, fileUrl: `file://${bare}`, first, second, feature };
}

/** Every running process's command line, from /proc (Linux). */
export function commandLines(): { pid: number; argv: string }[] {
  const out: { pid: number; argv: string }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ').trim();
      if (argv) out.push({ pid: Number(name), argv });
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

/** Gone, or a zombie waiting to be reaped: either way it runs no more. */
export function isDead(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

export function httpBackendPath(): string | null {
  const execPath = execFileSync('git', ['--exec-path'], { encoding: 'utf8' }).trim();
  const backend = path.join(execPath, 'git-http-backend');
  return existsSync(backend) ? backend : null;
}

export interface GitHttpServer {
  url: string;
  /** Authorization headers of the requests that were served (auth accepted). */
  authorized: string[];
  /** Requests refused with 401. */
  refused: number;
  /** Command lines of every git process alive while each authorized request was handled. */
  gitCommandLines: string[];
  /** Requests under /slow/ that are being held open and never answered. */
  held: http.ServerResponse[];
  close(): Promise<void>;
}

/**
 * Serves <serveDir>/app.git at /app.git and, for the cancel and timeout tests, at /slow/app.git,
 * where the ref advertisement works but the fetch itself (a POST) never gets an answer.
 */
export async function startGitHttpServer(options: {
  backend: string;
  serveDir: string;
  home: string;
  username: string;
  password: string;
}): Promise<GitHttpServer> {
  const expected = `Basic ${Buffer.from(`${options.username}:${options.password}`).toString('base64')}`;
  const state = { authorized: [] as string[], refused: 0, gitCommandLines: [] as string[], held: [] as http.ServerResponse[] };

  const server = http.createServer((req, res) => {
    if (req.headers.authorization !== expected) {
      state.refused += 1;
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="rhone-test"' });
      res.end();
      return;
    }
    state.authorized.push(req.headers.authorization);
    // While this request is open the fetching git processes are alive: record their argv.
    for (const { argv } of commandLines()) if (/\bgit\b|git-remote/.test(argv)) state.gitCommandLines.push(argv);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const slow = url.pathname.startsWith('/slow/');
    if (slow && req.method === 'POST') {
      state.held.push(res);
      req.resume();
      return;
    }
    runCgi(req, res, url, slow ? url.pathname.slice('/slow'.length) : url.pathname, options);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get authorized() {
      return state.authorized;
    },
    get refused() {
      return state.refused;
    },
    get gitCommandLines() {
      return state.gitCommandLines;
    },
    get held() {
      return state.held;
    },
    close: () => {
      for (const res of state.held) res.destroy();
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

function runCgi(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
  pathInfo: string,
  options: { backend: string; serveDir: string; home: string; username: string },
): void {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: options.home,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_PROJECT_ROOT: options.serveDir,
    GIT_HTTP_EXPORT_ALL: '1',
    REQUEST_METHOD: req.method,
    PATH_INFO: pathInfo,
    QUERY_STRING: url.search.slice(1),
    CONTENT_TYPE: req.headers['content-type'] ?? '',
    REMOTE_USER: options.username,
    REMOTE_ADDR: '127.0.0.1',
    // Protocol v2 is negotiated through this header; without it the backend speaks v0.
    HTTP_GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
    HTTP_CONTENT_ENCODING: String(req.headers['content-encoding'] ?? ''),
  };
  if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
  const cgi = spawn(options.backend, [], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  req.pipe(cgi.stdin);
  let head = Buffer.alloc(0);
  let headersSent = false;
  cgi.stdout.on('data', (chunk: Buffer) => {
    if (headersSent) {
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    const text = head.toString('latin1');
    const end = text.search(/\r?\n\r?\n/);
    if (end < 0) return;
    const separator = text.slice(end).match(/^\r?\n\r?\n/)?.[0] ?? '\n\n';
    let status = 200;
    const headers: Record<string, string> = {};
    for (const line of text.slice(0, end).split(/\r?\n/)) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
      else headers[name] = value;
    }
    res.writeHead(status, headers);
    headersSent = true;
    res.write(head.subarray(end + separator.length));
  });
  cgi.on('close', () => {
    if (!headersSent) res.writeHead(502);
    res.end();
  });
}
