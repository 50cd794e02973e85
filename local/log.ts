// The logger the local runtime writes to; pino's Logger fits it, and so does a silent stub.
export interface LocalLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: LocalLogger = { info() {}, warn() {}, error() {} };
