// Rhone's static file server, copied into every static-site image that local mode builds (the
// part Caddy plays in Railpack's staticfile images). Dependency-free on purpose: it must run with
// nothing but `node`. Usage: node static-server.mjs [root]; listens on $PORT (default 8080).
// GET /health answers 200 (503 while draining) so the platform's check has a path to probe.
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';

const ROOT = path.resolve(process.argv[2] || '.');
const PORT = Number(process.env.PORT || 8080);
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'application/xml',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.wasm': 'application/wasm',
  '.pdf': 'application/pdf',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.webmanifest': 'application/manifest+json',
};
let draining = false;
let realRoot = ROOT;

function text(res, status, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

/** The file a URL path names, or undefined when it is outside the root, hidden, or missing. */
async function resolveFile(urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  // Dotfiles (.env, .git, Rhone's own .rhone/) are never served; .well-known is meant to be.
  const segments = decoded.split('/').filter(Boolean);
  if (segments.some((s) => s.startsWith('.') && s !== '.well-known') || decoded.includes('\0')) return undefined;
  let file = path.join(realRoot, ...segments);
  let info = await stat(file).catch(() => undefined);
  if (info?.isDirectory()) {
    if (!urlPath.endsWith('/')) return { redirect: `${urlPath}/` };
    file = path.join(file, 'index.html');
    info = await stat(file).catch(() => undefined);
  }
  if (!info?.isFile()) return undefined;
  // A symlink inside the site must not reach files outside it.
  const real = await realpath(file).catch(() => '');
  if (real !== realRoot && !real.startsWith(realRoot + path.sep)) return undefined;
  return { file, info };
}

function sendFile(req, res, status, file, info) {
  const etag = `W/"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
  const headers = {
    'Content-Type': TYPES[path.extname(file).toLowerCase()] || 'application/octet-stream',
    'Content-Length': info.size,
    'Last-Modified': info.mtime.toUTCString(),
    ETag: etag,
    'X-Content-Type-Options': 'nosniff',
  };
  if (status === 200 && req.headers['if-none-match'] === etag) {
    res.writeHead(304, { ETag: etag });
    return res.end();
  }
  res.writeHead(status, headers);
  if (req.method === 'HEAD') return res.end();
  createReadStream(file)
    .on('error', () => res.destroy())
    .pipe(res);
}

const server = createServer(async (req, res) => {
  if (draining) res.setHeader('Connection', 'close');
  const { pathname, search } = new URL(req.url || '/', 'http://localhost');
  if (pathname === '/health') return draining ? text(res, 503, 'draining') : text(res, 200, 'ok');
  if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
  try {
    const found = await resolveFile(pathname);
    if (found?.redirect) return text(res, 301, '', { Location: found.redirect + search });
    if (found) return sendFile(req, res, 200, found.file, found.info);
    const notFound = await resolveFile('/404.html');
    if (notFound?.file) return sendFile(req, res, 404, notFound.file, notFound.info);
    return text(res, 404, 'not found\n');
  } catch (err) {
    console.error(`static-server: ${req.method} ${pathname}: ${err.message}`);
    if (!res.headersSent) text(res, 500, 'internal error\n');
  }
});

// SIGTERM: fail /health so traffic moves away, finish what is in flight, then exit.
process.on('SIGTERM', () => {
  draining = true;
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 5000).unref();
});
process.on('SIGINT', () => process.exit(0));

realRoot = await realpath(ROOT).catch(() => {
  console.error(`static-server: the site root ${ROOT} does not exist`);
  process.exit(1);
});
server.listen(PORT, () => console.log(`static-server: serving ${ROOT} on :${server.address().port}`));
