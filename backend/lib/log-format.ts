// How npm start shows its processes' logs. They always write pino's JSON (what a log collector
// wants); npm start turns each record into one short line when a person is reading a terminal,
// and passes the JSON through untouched otherwise (a pipe, a file, CI).
import { prettyFactory } from 'pino-pretty';

export interface LogFormatOptions {
  /** Whether stdout is a terminal. */
  tty: boolean;
  /** Colours (default: on for a terminal). */
  color?: boolean;
}

/** Returns a function from one line of a process's output to the line to print. */
export function logLineFormatter({ tty, color = tty }: LogFormatOptions): (line: string) => string {
  if (!tty) return (line) => line;
  const pretty = prettyFactory({ colorize: color, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname', singleLine: true });
  return (line) => {
    if (!line.startsWith('{')) return line;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      return line;
    }
    // Only pino records: anything else that happens to be JSON is shown as it was written.
    if (typeof record !== 'object' || record === null || !('level' in record) || !('time' in record)) return line;
    return pretty(record).trimEnd();
  };
}
