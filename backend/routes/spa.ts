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

/**
 * An asset's size and its gzip copy's, looked up once: asset names carry a hash of their content,
 * so a name never changes content. A name not (yet) built is looked up again next time.
 */
const known = new Map<string, { plain: number; gzip: number | null }>();
function assetSizes(file: string): { plain: number; gzip: number | null } | null {
  let sizes = known.get(file);
  if (sizes) return sizes;
  if (!existsSync(file) || !statSync(file).isFile()) return null;
  sizes = { plain: statSync(file).size, gzip: existsSync(`${file}.gz`) ? statSync(`${file}.gz`).size : null };
  known.set(file, sizes);
  return sizes;
}

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
      const sizes = file ? assetSizes(file) : null;
      if (!file || !sizes) {
        ctx.status = 404;
        ctx.set('Cache-Control', 'no-store');
        ctx.body = { error: 'not_found', message: `No asset ${ctx.path}: the dashboard was rebuilt since this page loaded. Reload the page.` };
        return;
      }
      ctx.type = TYPES[path.extname(file)] ?? 'application/octet-stream';
      ctx.set('Cache-Control', 'public, max-age=31536000, immutable');
      ctx.vary('Accept-Encoding');
      // The build writes a gzip copy of every asset beside it (frontend/vite.config.ts).
      if (ctx.acceptsEncodings('gzip', 'identity') === 'gzip' && sizes.gzip !== null) {
        ctx.set('Content-Encoding', 'gzip');
        ctx.length = sizes.gzip;
        ctx.body = createReadStream(`${file}.gz`);
      } else {
        ctx.length = sizes.plain;
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
