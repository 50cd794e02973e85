// Errors a user can act on: a stable code, an HTTP status and a message. The error middleware
// turns them into {error, message, details?}.
export class AppError extends Error {
  constructor(
    public readonly status: number,
    public readonly code: string,
    message: string,
    public readonly details?: unknown,
  ) {
    super(message);
    this.name = new.target.name;
  }

  /** A client error is the request's fault: the same request fails the same way (see isPermanent). */
  get permanent(): boolean {
    return this.status < 500;
  }
}

/**
 * Whether retrying can help is a property of the error, never a match on its class name or message
 * (argos's UnretryableError): an error whose `permanent` is true says the input has to change, so a
 * job that meets it fails at once, in its words. Any other error is worth another attempt.
 */
export interface MaybePermanent {
  readonly permanent?: boolean;
}

export function isPermanent(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as MaybePermanent).permanent === true;
}

/** A failure retrying cannot fix: the user has to change something. Its message is shown to them. */
export class PermanentError extends Error {
  readonly permanent = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * Work stopped through its AbortSignal: a cancel the user asked for (the pipeline's abort reason),
 * or a child process killed because its signal fired (the builder's; the signal's reason says why).
 */
export class CanceledError extends Error {
  readonly code = 'canceled';
  constructor(message = 'canceled', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CanceledError';
  }
}

export class ValidationError extends AppError {
  constructor(message: string, details?: unknown) {
    super(400, 'validation_error', message, details);
  }
}

export class BadRequestError extends AppError {
  constructor(code: string, message: string, details?: unknown) {
    super(400, code, message, details);
  }
}

export class UnauthenticatedError extends AppError {
  constructor(message = 'Sign in first, or send an API token as "Authorization: Bearer <token>".') {
    super(401, 'unauthenticated', message);
  }
}

export class ForbiddenError extends AppError {
  constructor(message: string, code = 'forbidden') {
    super(403, code, message);
  }
}

export class NotFoundError extends AppError {
  constructor(what: string) {
    super(404, 'not_found', `${what} was not found, or you are not a member of its team.`);
  }
}

export class ConflictError extends AppError {
  constructor(code: string, message: string, details?: unknown) {
    super(409, code, message, details);
  }
}

export class RateLimitedError extends AppError {
  constructor(public readonly retryAfterSeconds: number) {
    super(429, 'rate_limited', `Too many requests. Try again in ${retryAfterSeconds} s.`);
  }
}

/** A user already holds as many live event streams as one user may (routes/deployments/stream-guard.ts). */
export class TooManyStreamsError extends AppError {
  constructor(max: number) {
    super(
      429,
      'too_many_streams',
      `You have ${max} live deployment streams open, the most one user may; close some deployment pages or scripts that follow deployments, then try again.`,
    );
  }
}
