import { randomUUID } from 'node:crypto';
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * ctx.state, whose `log` (the request's child logger) is made on first use: most requests log
 * nothing until their closing line, and a pino child costs more than the rest of a cached read.
 */
class RequestState {
  [key: string]: unknown;
  #root: Logger;
  #log: Logger | undefined;

  constructor(
    root: Logger,
    readonly requestId: string,
  ) {
    this.#root = root;
  }

  get log(): Logger {
    return (this.#log ??= this.#root.child({ requestId: this.requestId }));
  }

  set log(log: Logger) {
    this.#log = log;
  }
}

/** Gives every request an id (or keeps a sane incoming one) and logs its outcome, never its body. */
export function requestLog(log: Logger) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const incoming = ctx.get('X-Request-Id');
    const requestId = REQUEST_ID.test(incoming) ? incoming : randomUUID();
    ctx.state = Object.assign(new RequestState(log, requestId), ctx.state);
    ctx.set('X-Request-Id', requestId);
    const started = performance.now();
    try {
      await next();
    } finally {
      const ms = Math.round((performance.now() - started) * 10) / 10;
      // At debug: one line per request drowns what npm start's terminal should show (LOG_LEVEL=debug shows them).
      if (log.isLevelEnabled('debug')) {
        ctx.state.log.debug({ method: ctx.method, path: ctx.path, status: ctx.status, ms }, 'request');
      }
    }
  };
}
