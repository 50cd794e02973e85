import assert from 'node:assert/strict';
import { lineSplitter, makeRedactor } from '../backend/source/git-process.ts';

describe('source: git output', () => {
  it('collapses progress meters into a few lines, keeping each final state', () => {
    let clock = 0;
    const lines: string[] = [];
    const split = lineSplitter(
      (l) => lines.push(l),
      () => clock,
    );
    clock = 5_000;
    split.push('remote: Counting objects:  10% (1/10)   \rremote: Counting objects:  50% (5/10)   \r');
    clock = 5_500;
    split.push('remote: Counting objects:  90% (9/10)   \rremote: Counting objects: 100% (10/10), done.\n');
    split.push('Receiving objects: 100% (3/3), done.\r\nFrom https://example.com/');
    split.push('app\n * branch   abc -> FETCH_HEAD\n');
    split.push('no newline at the end');
    split.end();
    assert.deepEqual(lines, [
      'remote: Counting objects:  10% (1/10)',
      'remote: Counting objects: 100% (10/10), done.',
      'Receiving objects: 100% (3/3), done.',
      'From https://example.com/app',
      ' * branch   abc -> FETCH_HEAD',
      'no newline at the end',
    ]);
  });

  it('shows a meter at most once a second, and its last state when git stops mid-meter', () => {
    let clock = 10_000;
    const lines: string[] = [];
    const split = lineSplitter(
      (l) => lines.push(l),
      () => clock,
    );
    for (let i = 1; i <= 30; i += 1) {
      clock += 100;
      split.push(`Receiving objects: ${i}%\r`);
    }
    split.end();
    assert.deepEqual(lines, ['Receiving objects: 1%', 'Receiving objects: 11%', 'Receiving objects: 21%', 'Receiving objects: 30%']);
  });

  it('redacts the password in plain, URL-encoded and Basic-auth form', () => {
    const redact = makeRedactor({ username: 'x-access-token', password: 'p@ss/word' });
    const basic = Buffer.from('x-access-token:p@ss/word').toString('base64');
    assert.equal(redact(`a p@ss/word b p%40ss%2Fword c ${basic}`), 'a [redacted] b [redacted] c [redacted]');
    assert.equal(makeRedactor()('nothing to hide'), 'nothing to hide');
  });
});
