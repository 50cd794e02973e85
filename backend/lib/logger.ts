import { pino, type Logger } from 'pino';
import { getConfig } from '../config.ts';

// Anything that may carry a secret is censored wherever it appears in a log object.
export const REDACT_PATHS = [
  'password', 'token', 'secret', 'authorization', 'cookie', 'value', 'vars', 'env',
  '*.password', '*.token', '*.secret', '*.authorization', '*.cookie', '*.value', '*.vars', '*.env',
  'headers.authorization', 'headers.cookie', 'req.headers.authorization', 'req.headers.cookie',
  'headers["x-csrf-token"]', 'req.headers["x-csrf-token"]',
];

let root: Logger | undefined;

export function logger(): Logger {
  root ??= pino({
    level: getConfig().logLevel,
    base: undefined,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  });
  return root;
}
