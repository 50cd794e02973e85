import type { Context, Next } from 'koa';
import objection from 'objection';
import { AppError, RateLimitedError } from '../lib/errors.ts';
import { databaseEndpoint, isDatabaseUnavailable } from '../lib/db-errors.ts';

const { NotFoundError: ModelNotFound, UniqueViolationError, ForeignKeyViolationError, CheckViolationError, NotNullViolationError } = objection;

interface HttpishError {
  status?: number;
  statusCode?: number;
  expose?: boolean;
  type?: string;
  message?: string;
}

/** Seconds a client is asked to wait when the database is unreachable. */
export const DATABASE_RETRY_AFTER_SECONDS = 5;

function errorBody(err: unknown, database: { host: string; port: number }): { status: number; error: string; message: string; details?: unknown } {
  if (isDatabaseUnavailable(err, database)) {
    return {
      status: 503,
      error: 'database_unavailable',
      message: `Rhone cannot reach its database right now, so nothing was changed. Try again in ${DATABASE_RETRY_AFTER_SECONDS} seconds; if it lasts, the operator should check that Postgres is running and DATABASE_URL points at it.`,
    };
  }
  if (err instanceof AppError) return { status: err.status, error: err.code, message: err.message, details: err.details };
  if (err instanceof ModelNotFound) return { status: 404, error: 'not_found', message: 'That resource was not found.' };
  if (err instanceof UniqueViolationError) {
    return { status: 409, error: 'conflict', message: 'That already exists.', details: { columns: err.columns } };
  }
  if (err instanceof ForeignKeyViolationError) {
    return { status: 409, error: 'conflict', message: 'That refers to something that does not exist or is still in use.' };
  }
  if (err instanceof CheckViolationError || err instanceof NotNullViolationError) {
    return { status: 400, error: 'validation_error', message: 'A value was not accepted.' };
  }
  const http = err as HttpishError;
  const status = http?.status ?? http?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 413) return { status, error: 'payload_too_large', message: 'The request body is larger than 1 MB.' };
    if (status === 415) return { status, error: 'unsupported_media_type', message: http.message ?? 'Send JSON with Content-Type: application/json.' };
    return { status, error: 'bad_request', message: http.expose && http.message ? http.message : 'The request was not understood.' };
  }
  return { status: 500, error: 'internal_error', message: 'Something went wrong on our side. Try again; if it keeps happening, quote the request id.' };
}

/** Maps every error to {error, message, details?}; unexpected ones are logged with the request id. */
export function errorHandler(databaseUrl?: string) {
  // Without the URL (tests mounting the handler alone), only SQLSTATEs and pool timeouts are recognised.
  const database = databaseUrl ? databaseEndpoint(databaseUrl) : { host: '', port: -1 };
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        ctx.status = 404;
        ctx.body = { error: 'not_found', message: `No route for ${ctx.method} ${ctx.path}.` };
      } else if (ctx.status === 405) {
        // The router has set Allow; say it in the body too.
        ctx.body = { error: 'method_not_allowed', message: `${ctx.method} is not allowed on ${ctx.path}; allowed: ${ctx.response.get('Allow')}.` };
        ctx.status = 405;
      }
    } catch (err) {
      const { status, ...body } = errorBody(err, database);
      if (status >= 500) {
        ctx.state.log?.error({ err }, 'request failed');
        ctx.body = { ...body, requestId: ctx.state.requestId };
      } else {
        ctx.body = body;
      }
      ctx.status = status;
      if (err instanceof RateLimitedError) ctx.set('Retry-After', String(err.retryAfterSeconds));
      if (status === 503 && body.error === 'database_unavailable') ctx.set('Retry-After', String(DATABASE_RETRY_AFTER_SECONDS));
    }
  };
}
