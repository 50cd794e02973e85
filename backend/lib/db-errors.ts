// Telling "the database is unreachable" apart from a bug, so the api can answer 503 with
// Retry-After (a client should try again shortly) instead of 500 (something is broken).
import knex from 'knex';

// A property of knex's default export (CommonJS): ESM cannot import it by name.
const { KnexTimeoutError } = knex;

// SQLSTATE classes 08 (connection exception) and 57P (operator intervention: shutdown, restart,
// cannot connect now), and 53300 (too many connections): https://www.postgresql.org/docs/current/errcodes-appendix.html
const UNAVAILABLE_SQLSTATE = /^(08\w{3}|57P0[1-4]|53300)$/;
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND']);

interface Errorish {
  code?: unknown;
  syscall?: unknown;
  port?: unknown;
  address?: unknown;
  hostname?: unknown;
  nativeError?: unknown;
}

/** The database's host and port, to recognise a failed connection to it. */
export function databaseEndpoint(databaseUrl: string): { host: string; port: number } {
  const url = new URL(databaseUrl);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 5432) };
}

// node-postgres ends a query whose connection closed under it with one of these, and no code
// (pg lib/client.js, _handleErrorEvent / end): the only errors here recognised by their text.
const PG_CONNECTION_LOST = new Set(['Connection terminated unexpectedly', 'Connection terminated', 'Connection terminated due to connection timeout']);

/**
 * True when `err` says Postgres could not be reached or is refusing work for now. Given the
 * database's endpoint, a network error counts only when it names that endpoint (the api, where a
 * request may also have failed to reach something else); without it, any network error does (a
 * caller that knows it only talked to the database).
 */
export function isDatabaseUnavailable(err: unknown, db?: { host: string; port: number }): boolean {
  if (err instanceof KnexTimeoutError) return true; // no pooled connection came within the timeout
  for (let e = err as Errorish | undefined, depth = 0; e && depth < 3; e = e.nativeError as Errorish | undefined, depth++) {
    if (typeof e.code === 'string' && UNAVAILABLE_SQLSTATE.test(e.code)) return true;
    if (e instanceof Error && e.code === undefined && PG_CONNECTION_LOST.has(e.message)) return true;
    // Redis's failures look the same, but ioredis queues commands while offline rather than failing them.
    if (typeof e.code === 'string' && NETWORK_CODES.has(e.code) && (!db || e.port === db.port || e.hostname === db.host)) return true;
  }
  return false;
}

/**
 * Runs `fn` again, with backoff, while it fails because the database is unreachable, for up to
 * `maxMs`; any other failure, or the last one, is thrown. For steps whose repetition is harmless
 * and whose failure would cost more than waiting: a pipeline stage settling after its work is done.
 */
export async function retryWhileDatabaseDown<T>(
  fn: () => Promise<T>,
  options: { maxMs?: number; onRetry?: (err: unknown, inMs: number) => void } = {},
): Promise<T> {
  const giveUpAt = Date.now() + (options.maxMs ?? 120_000);
  let delay = 250;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isDatabaseUnavailable(err) || Date.now() + delay > giveUpAt) throw err;
      options.onRetry?.(err, delay);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 5_000);
    }
  }
}
