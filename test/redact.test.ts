// The one redactor every text leaving a stage goes through: literal matching of env values (no
// regex built from them, which a 40 KB value made V8 refuse with the values in its message), a
// streaming form that never cuts a secret in halves, and safeText for reasons.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRedactor, REDACTED, safeText, UNREDACTABLE } from '../backend/deployments/redact.ts';
import { lineSplitter } from '../backend/builder/process.ts';

const big = () => randomBytes(33_000).toString('base64'); // 44,000 characters, as a base64 key would be

/** Every window of `size` characters of the secret that shows in the text: what a reader could piece together. */
function leaks(text: string, secret: string, size = 12): string[] {
  const found: string[] = [];
  for (let i = 0; i + size <= secret.length; i += size) if (text.includes(secret.slice(i, i + size))) found.push(secret.slice(i, i + size));
  return found;
}

describe('redactor', () => {
  it('redacts a 44,000-character value, and the other values beside it', () => {
    const key = big();
    assert.equal(key.length, 44_000);
    const redact = createRedactor([key, 'short-secret-1']);
    const out = redact(`key=${key} token=short-secret-1 end`);
    assert.equal(out, `key=${REDACTED} token=${REDACTED} end`);
  });

  it('reads the list live: values pushed later are redacted from then on', () => {
    const secrets: string[] = [];
    const redact = createRedactor(secrets);
    assert.equal(redact('a hunter2-password'), 'a hunter2-password');
    secrets.push('hunter2-password');
    assert.equal(redact('a hunter2-password'), `a ${REDACTED}`);
  });

  it('redacts a multi-line PEM value whole, and each of its lines on its own', () => {
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n';
    const redact = createRedactor([pem]);
    assert.equal(redact(`key:\n${pem}done`), `key:\n${REDACTED}done`);
    assert.equal(redact('  MIIEvQIBADANBgkqhkiG9w0BAQEFAASC'), `  ${REDACTED}`);
    assert.equal(redact('BKcwggSjAgEAAoIBAQC7'), REDACTED);
  });

  it('hides overlapping and nested values entirely, and ignores values under 4 characters', () => {
    const redact = createRedactor(['abcdefgh', 'efghijkl', 'cde', 'bcdefg']);
    assert.equal(redact('xxabcdefghijklxx'), `xx${REDACTED}xx`);
    assert.equal(redact('a cde b'), 'a cde b');
    assert.equal(redact('aaaabcdefg'), `aaaa${REDACTED}`);
  });

  it('never throws: a text it cannot check becomes a fixed placeholder, not an error message', () => {
    const redact = createRedactor(['hunter2-password']);
    const hostile = {
      toString: () => {
        throw new Error('hunter2-password leaked through the error');
      },
    };
    assert.equal(redact(hostile as unknown as string), UNREDACTABLE);
    assert.equal(safeText(redact, hostile, 100), UNREDACTABLE);
    const stream = redact.stream();
    assert.equal(stream.push(hostile as unknown as string), UNREDACTABLE);
  });

  it('safeText redacts, then caps with a marker', () => {
    const redact = createRedactor(['hunter2-password']);
    const out = safeText(redact, `failed with hunter2-password: ${'x'.repeat(5000)}`, 2048);
    assert.ok(out.length <= 2048, `${out.length} characters`);
    assert.ok(out.startsWith(`failed with ${REDACTED}: xxx`));
    assert.match(out, /… \[cut at 2 KB\]$/);
    assert.equal(safeText(redact, 'short', 2048), 'short');
    assert.equal(safeText(redact, new Error('with hunter2-password').message, 2048), `with ${REDACTED}`);
  });

  it('streams: a value crossing chunks is never shown in halves, and a full line is not held back', () => {
    const key = big();
    const redact = createRedactor([key, 'short-secret-1']);
    const stream = redact.stream();
    let out = '';
    const text = `start ${key} middle short-secret-1\nnext line\n`;
    for (let i = 0; i < text.length; i += 997) out += stream.push(text.slice(i, i + 997));
    assert.equal(out, `start ${REDACTED} middle ${REDACTED}\nnext line\n`, 'everything up to the last newline is out already');
    assert.equal(stream.end(), '');
    // Only (longest value - 1) characters after the last newline wait for what comes next.
    const partial = createRedactor(['short-secret-1']).stream();
    assert.equal(partial.push('no newline yet: short-sec'), 'no newline y');
    assert.equal(partial.push('ret-1 and more'), `et: ${REDACTED}`);
    assert.equal(partial.end(), ' and more');
  });

  it('redacts a line longer than the cut before cutting it: a value straddling a 16 KB cut shows in no piece', () => {
    const secret = 'straddling-secret-value-0123456789';
    const key = big();
    const redact = createRedactor([secret, key]);
    const lines: string[] = [];
    const split = lineSplitter((line) => lines.push(line), redact);
    // The first piece of a 16 KB cut would end in the middle of the secret.
    split.push(Buffer.from(`${'x'.repeat(16 * 1024 - 10)}${secret}${'y'.repeat(100)} ${key} tail\n`));
    split.end();
    const all = lines.join('\n');
    assert.deepEqual(leaks(all, secret, 6), []);
    assert.deepEqual(leaks(all, key), []);
    assert.equal(lines.join(''), `${'x'.repeat(16 * 1024 - 10)}${REDACTED}${'y'.repeat(100)} ${REDACTED} tail`);
  });

  it('stays fast: 100,000 log lines against 50 values', () => {
    const secrets = Array.from({ length: 50 }, (_, i) => `secret-${i}-${randomBytes(12).toString('hex')}`);
    secrets.push(big());
    const redact = createRedactor(secrets);
    const started = performance.now();
    let hits = 0;
    for (let i = 0; i < 100_000; i++) {
      const line = `2026-01-01T00:00:00Z step ${i}: compiling module ${i % 977} of the app${i % 1000 === 0 ? ` with ${secrets[i % 50]}` : ''}`;
      if (redact(line).includes(REDACTED)) hits++;
    }
    const ms = performance.now() - started;
    assert.equal(hits, 100);
    // Measured at ~0.12 s on a shared 2-core machine; the bound only catches a quadratic regression.
    assert.ok(ms < 10_000, `${Math.round(ms)} ms`);
  });
});
