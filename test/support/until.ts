// The one way a test waits for something it cannot be told about by an event: ask again until the
// answer is yes, up to a deadline. A fixed sleep either waits too long or, on a loaded machine,
// not long enough.

export interface UntilOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** Time between two probes (default 50 ms). */
  everyMs?: number;
}

/**
 * Resolves with the probe's first truthy answer; rejects with "timed out waiting for <what>" at
 * the deadline. A probe that throws fails the wait at once: return undefined for "not yet".
 */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  options: number | UntilOptions = {},
): Promise<T> {
  const { timeoutMs = 10_000, everyMs = 50 } = typeof options === 'number' ? { timeoutMs: options } : options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
