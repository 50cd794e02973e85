// npm start's output: a person at a terminal reads compact lines, anything else gets the JSON as
// the processes wrote it (backend/lib/log-format.ts).
import assert from 'node:assert/strict';
import { logLineFormatter } from '../backend/lib/log-format.ts';

const json = JSON.stringify({ level: 30, time: Date.UTC(2026, 11, 4, 9, 30, 5), msg: 'deployment live', deploymentId: 'd-1' });

describe('npm start output', () => {
  it('prints JSON log lines as one readable line when stdout is a terminal', () => {
    const format = logLineFormatter({ tty: true, color: false });
    const out = format(json);
    assert.doesNotMatch(out, /^\{/);
    assert.match(out, /INFO/);
    assert.match(out, /deployment live/);
    assert.match(out, /\{"deploymentId":"d-1"\}/);
    assert.ok(!out.includes('\n'), 'one line');
  });

  it('leaves lines that are not JSON log records as they are', () => {
    const format = logLineFormatter({ tty: true, color: false });
    assert.equal(format('rhone: applied 3 migrations'), 'rhone: applied 3 migrations');
    assert.equal(format('{not json'), '{not json');
  });

  it('passes JSON through untouched when stdout is not a terminal', () => {
    assert.equal(logLineFormatter({ tty: false })(json), json);
  });
});
