export class FlyApiError extends Error {
  constructor(
    readonly status: number,
    readonly method: string,
    readonly path: string,
    /** Fly's own words (ErrorResponse.error), to show a user. */
    readonly detail: string,
    /** Fly's ErrorResponse.status: name_taken, insufficient_capacity... */
    readonly code?: string,
  ) {
    super(`Fly API ${method} ${path} answered ${status}: ${detail}`);
    this.name = 'FlyApiError';
  }

  get transient(): boolean {
    return this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

/** The request may never have reached Fly, or its answer was lost on the way back. */
export class FlyNetworkError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly cause: unknown,
  ) {
    super(`Fly API ${method} ${path} failed: ${(cause as Error)?.message ?? String(cause)}`);
    this.name = 'FlyNetworkError';
  }
}

export function isTransient(err: unknown): boolean {
  return err instanceof FlyNetworkError || (err instanceof FlyApiError && err.transient);
}
