import type { Context, Next } from 'koa';
import getRawBody from 'raw-body';
import { AppError } from '../lib/errors.ts';

export const BODY_LIMIT = 1024 * 1024;

/**
 * Reads JSON bodies up to 1 MB. The raw bytes are kept on ctx.state.rawBody, because webhook
 * signatures are computed over exactly what was sent.
 */
export function jsonBody(limit = BODY_LIMIT) {
  return async (ctx: Context, next: Next): Promise<void> => {
    if (!ctx.request.length && !ctx.get('Transfer-Encoding')) return next();
    if (['GET', 'HEAD', 'DELETE', 'OPTIONS'].includes(ctx.method) && !ctx.request.length) return next();
    const raw = await getRawBody(ctx.req, { length: ctx.request.length, limit });
    ctx.state.rawBody = raw;
    if (raw.length === 0) return next();
    if (!ctx.is('application/json', '+json')) {
      throw new AppError(415, 'unsupported_media_type', 'Send the body as JSON with "Content-Type: application/json".');
    }
    try {
      ctx.request.body = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      throw new AppError(400, 'invalid_json', `The body is not valid JSON: ${(err as Error).message}`);
    }
    return next();
  };
}

declare module 'koa' {
  interface Request {
    body?: unknown;
  }
}
