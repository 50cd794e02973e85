import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Context, Next } from 'koa';

const frontendDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../frontend');

/** Serves the dashboard for any GET that no API route took (history-mode fallback to index.html). */
export function spa() {
  const built = path.join(frontendDir, 'dist/index.html');
  const placeholder = path.join(frontendDir, 'index.html');
  return async (ctx: Context, next: Next): Promise<void> => {
    if (ctx.method !== 'GET' || ctx.path.startsWith('/api/') || ctx.path.startsWith('/auth/') || ctx.path.startsWith('/webhooks/')) return next();
    if (!ctx.accepts('html')) return next();
    const file = existsSync(built) ? built : placeholder;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = readFileSync(file);
  };
}
