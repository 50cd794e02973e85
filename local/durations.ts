// Go durations as Fly reads them: "10s", "500ms", "1m30s", "1.5h". A bare number is nanoseconds
// (fly-go's Duration), so 30 means 30 ns, not 30 s.

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;

/** Milliseconds, or undefined when the value is not a duration. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value / 1e6 : undefined;
  if (typeof value !== 'string') return undefined;
  const s = value.trim();
  if (s === '0') return 0;
  if (/^\d+$/.test(s)) return Number(s) / 1e6;
  if (s === '') return undefined;
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < s.length) {
    const start = PART.lastIndex;
    const m = PART.exec(s);
    if (!m || m.index !== start) return undefined;
    total += Number(m[1]) * UNIT_MS[m[2]];
  }
  return total;
}

/** The duration in ms, or the fallback when the value is absent or unreadable. */
export function durationOr(value: unknown, fallbackMs: number): number {
  return parseDuration(value) ?? fallbackMs;
}
