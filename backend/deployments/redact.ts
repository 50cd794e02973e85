// The one redactor for everything a deployment stage lets out: log lines, failure reasons, status
// events, commit-status descriptions. Secrets are env values, up to 64 KB each, so matching is
// literal (indexOf per value): a RegExp built from them is refused by V8 past a few tens of KB
// ("Regular expression too large"), and that error's message holds the pattern, every value.
// Nothing here throws: a text that cannot be checked becomes a fixed placeholder, never the error.

export const REDACTED = '[redacted]';
/** What replaces a text the redactor failed on: it says nothing about the text. */
export const UNREDACTABLE = '[hidden: this text could not be checked for secrets]';
/** Shorter values are not redacted: they would cut half the log ("1", "true", "dev"). */
export const MIN_SECRET_LENGTH = 4;
/** The cap of a failure reason: long enough for the last lines of output, short enough to read. */
export const REASON_MAX = 2048;

export interface RedactingStream {
  /** Takes the next chunk; returns the redacted text that can go out now. */
  push(chunk: string): string;
  /** Returns whatever was held back, redacted. */
  end(): string;
}

export interface Redactor {
  /** The text with every secret (and every line of a multi-line secret) replaced by [redacted]. */
  (text: string): string;
  /**
   * For text that arrives in chunks and is cut afterwards (into lines, or at a size): holds back
   * the last (longest value − 1) characters after the last newline, so a value crossing a chunk
   * is matched whole, and what goes out can be cut anywhere. Text up to the last newline goes out
   * at once: the values it matches contain no newline (a multi-line value is matched line by line).
   */
  stream(): RedactingStream;
}

interface Needles {
  /** Every value and every line of a multi-line value, longest first. */
  all: string[];
  /** Those without a line break: what a stream matches. */
  lines: string[];
  longestLine: number;
}

function needlesOf(secrets: readonly unknown[]): Needles {
  const values = new Set<string>();
  for (const secret of secrets) {
    if (typeof secret !== 'string') continue;
    values.add(secret);
    // A multi-line value (a PEM key) reaches the log a line at a time.
    if (/[\r\n]/.test(secret)) for (const part of secret.split(/\r?\n|\r/)) values.add(part.trim());
  }
  const all = [...values].filter((v) => v.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
  const lines = all.filter((v) => !/[\r\n]/.test(v));
  return { all, lines, longestLine: lines[0]?.length ?? 0 };
}

/**
 * Where the needles occur in text, as sorted, merged [start, end) ranges. Overlapping values
 * ("abcdef" and "defghi" in "abcdefghi") merge into one range, so no part of either shows.
 */
function ranges(text: string, needles: readonly string[]): [number, number][] {
  const found: [number, number][] = [];
  for (const needle of needles) {
    for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + 1)) found.push([at, at + needle.length]);
  }
  if (found.length < 2) return found;
  found.sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [found[0]];
  for (const [start, end] of found.slice(1)) {
    const last = merged[merged.length - 1];
    if (start <= last[1]) last[1] = Math.max(last[1], end);
    else merged.push([start, end]);
  }
  return merged;
}

/** text[0, upTo) with the ranges that lie in it replaced. */
function replaced(text: string, found: readonly [number, number][], upTo = text.length): string {
  let out = '';
  let from = 0;
  for (const [start, end] of found) {
    if (end > upTo) break;
    out += text.slice(from, start) + REDACTED;
    from = end;
  }
  return out + text.slice(from, upTo);
}

/**
 * A redactor over `secrets`, read live: values pushed onto the array later are redacted from then
 * on (the deploy stage adds the env values once it has opened them).
 */
export function createRedactor(secrets: readonly unknown[]): Redactor {
  let seen = -1;
  let needles: Needles = { all: [], lines: [], longestLine: 0 };
  const current = (): Needles => {
    if (secrets.length !== seen) {
      needles = needlesOf(secrets);
      seen = secrets.length;
    }
    return needles;
  };

  const redact = ((text: string): string => {
    try {
      const s = String(text);
      const { all } = current();
      return all.length === 0 ? s : replaced(s, ranges(s, all));
    } catch {
      return UNREDACTABLE;
    }
  }) as Redactor;

  redact.stream = (): RedactingStream => {
    let held = '';
    return {
      push(chunk) {
        try {
          const text = held + String(chunk);
          const { lines, longestLine } = current();
          if (lines.length === 0) {
            held = '';
            return text;
          }
          let cut = Math.max(text.lastIndexOf('\n') + 1, text.length - (longestLine - 1));
          const found = ranges(text, lines);
          // A match over the cut is complete (it started before the held-back part): let it out whole.
          for (const [start, end] of found) if (start < cut && end > cut) cut = end;
          held = text.slice(cut);
          return replaced(text, found, cut);
        } catch {
          held = '';
          return UNREDACTABLE;
        }
      },
      end() {
        const rest = held;
        held = '';
        return rest ? redact(rest) : '';
      },
    };
  };
  return redact;
}

/** text cut to at most `max` characters, with a marker saying so. */
export function capText(text: string, max: number): string {
  if (text.length <= max) return text;
  const marker = ` … [cut at ${max >= 1024 ? `${Math.round(max / 1024)} KB` : `${max} characters`}]`;
  // Not in the middle of a surrogate pair.
  let end = Math.max(0, max - marker.length);
  if (end > 0 && /[\uD800-\uDBFF]/.test(text[end - 1])) end -= 1;
  return text.slice(0, end) + marker;
}

/**
 * What every reason, status event and commit-status description of the pipeline is made with:
 * redacted first (so a cut never leaves half a secret), then capped. Takes anything, since
 * reasons come from thrown values; never throws.
 */
export function safeText(redact: Redactor, text: unknown, cap: number = REASON_MAX): string {
  try {
    return capText(redact(String(text)), cap);
  } catch {
    return UNREDACTABLE;
  }
}

/**
 * The redacted start of a very long text, at least `chars` characters of it when there are, in
 * bounded work: redacts as a stream and stops once enough is out, so the cut never falls inside
 * a value and the held-back rest is dropped unseen.
 */
export function redactedPrefix(redact: Redactor, text: string, chars: number): string {
  const stream = redact.stream();
  const STEP = 64 * 1024;
  let out = '';
  for (let i = 0; i < text.length; i += STEP) {
    out += stream.push(text.slice(i, i + STEP));
    if (out.length >= chars) return out;
  }
  return out + stream.end();
}
