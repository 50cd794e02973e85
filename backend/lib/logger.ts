import { pino, type DestinationStream, type Logger } from 'pino';
import { getConfig } from '../config.ts';

// Anything that may carry a secret is censored wherever it appears in a log object.
export const REDACT_PATHS = [
  'password',
  'token',
  'secret',
  'authorization',
  'cookie',
  'value',
  'vars',
  'env',
  '*.password',
  '*.token',
  '*.secret',
  '*.authorization',
  '*.cookie',
  '*.value',
  '*.vars',
  '*.env',
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers["x-csrf-token"]',
  'req.headers["x-csrf-token"]',
];

let root: Logger | undefined;

/**
 * Errors are logged with their type, message, stack and plain fields, but not the request or response
 * an HTTP client error carries: octokit's keeps the request body (a client secret, a token being
 * exchanged) and any client's keeps the headers, deeper than the redact paths reach.
 */
export function serializeError(err: unknown): unknown {
  const out = pino.stdSerializers.err(err as Error) as unknown as Record<string, unknown>;
  if (out && typeof out === 'object' && out !== err) {
    for (const key of ['request', 'response', 'config', 'options', 'headers']) delete out[key];
  }
  return out;
}

/** A logger with Rhone's settings; tests pass a destination to read what would be written. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, base: undefined, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, serializers: { err: serializeError } };
  return destination ? pino(options, destination) : pino(options);
}

export function logger(): Logger {
  root ??= createLogger(getConfig().logLevel);
  return root;
}
