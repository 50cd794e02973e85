// Whether the pipeline retries a failure is the error's own `permanent` property (argos's
// UnretryableError), never its class name: each stage's errors say it themselves.
import assert from 'node:assert/strict';
import { AnalyzeError, AnalyzeRetryableError, BuildError, PlanImageRefusedError } from '../backend/builder/errors.ts';
import { AppError, CanceledError, isPermanent, NotFoundError } from '../backend/lib/errors.ts';
import { ReleaseError } from '../backend/releases/blue-green.ts';
import { SourceError } from '../backend/source/git.ts';
import { TooLargeError } from '../backend/source/limits.ts';
import { UserFacingError } from '../jobs/stage.ts';
import { StageTimeoutError } from '../jobs/stage-guards.ts';

describe('permanent errors', () => {
  it('fails at once on what only a change to the app or the request can fix', () => {
    for (const err of [
      new AnalyzeError('no start command'),
      new BuildError('npm run build exited with 1'),
      new PlanImageRefusedError('refused', 'evil/image', 'railpack.json'),
      new ReleaseError('the health check failed', 'health'),
      new SourceError('ref_not_found', 'no branch "x"'),
      new TooLargeError('source', 'bytes', 'too big'),
      new UserFacingError('set RHONE_BUILDER_ADDR'),
      new StageTimeoutError('build', 60_000),
      new NotFoundError('App'),
    ]) {
      assert.equal(isPermanent(err), true, err.name);
    }
  });

  it('tries again after what may work next time', () => {
    for (const err of [
      new AnalyzeRetryableError('exit 75'),
      new SourceError('unreachable', 'the host did not answer'),
      new SourceError('timeout', 'git took too long'),
      new AppError(503, 'unavailable', 'try later'),
      new CanceledError(),
      new Error('ECONNRESET'),
    ]) {
      assert.equal(isPermanent(err), false, err.name);
    }
    assert.equal(isPermanent(null), false);
    assert.equal(isPermanent('a string'), false);
  });

  it('does not read the class name: a look-alike without the property is retried', () => {
    const lookAlike = new Error('x');
    lookAlike.name = 'BuildError';
    assert.equal(isPermanent(lookAlike), false);
  });
});
