// The dashboard: Vite's build in frontend/dist. Hashed assets are cached for a year (their names
// change with their content); index.html is never cached, so a deploy of Rhone is seen at once.
// Any other GET that no API route took gets index.html (history-mode routing in the browser).
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Context, Next } from 'koa';

export const frontendDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../frontend');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

const ASSET = /^\/assets\/[A-Za-z0-9._-]+$/;
const NOT_SPA = ['/api/', '/auth/', '/webhooks/'];

export function spa(dir = path.join(frontendDir, 'dist')) {
  const index = path.join(dir, 'index.html');
  const placeholder = path.join(frontendDir, 'placeholder.html');
  // index.html is small and changes only with a rebuild: read per request (no restart needed after `vite build`).
  const page = () => readFileSync(existsSync(index) ? index : placeholder);

  return async (ctx: Context, next: Next): Promise<void> => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    if (NOT_SPA.some((p) => ctx.path.startsWith(p))) return next();

    if (ctx.path.startsWith('/assets/')) {
      const file = ASSET.test(ctx.path) ? path.join(dir, ctx.path) : null;
      if (!file || !existsSync(file) || !statSync(file).isFile()) {
        ctx.status = 404;
        ctx.set('Cache-Control', 'no-store');
        ctx.body = { error: 'not_found', message: `No asset ${ctx.path}: the dashboard was rebuilt since this page loaded. Reload the page.` };
        return;
      }
      ctx.type = TYPES[path.extname(file)] ?? 'application/octet-stream';
      ctx.set('Cache-Control', 'public, max-age=31536000, immutable');
      ctx.vary('Accept-Encoding');
      // The build writes a gzip copy of every asset beside it (frontend/vite.config.ts).
      if (ctx.acceptsEncodings('gzip', 'identity') === 'gzip' && existsSync(`${file}.gz`)) {
        ctx.set('Content-Encoding', 'gzip');
        ctx.length = statSync(`${file}.gz`).size;
        ctx.body = createReadStream(`${file}.gz`);
      } else {
        ctx.length = statSync(file).size;
        ctx.body = createReadStream(file);
      }
      return;
    }

    if (!ctx.accepts('html')) return next();
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = page();
  };
}
