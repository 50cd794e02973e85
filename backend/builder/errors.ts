// Errors of the analyze and build stages. Their messages are shown to the user as the reason a
// deployment failed, so each says what happened and what to change. `code` lets a processor tell
// them apart without reading messages.

import { CanceledError } from '../lib/errors.ts';

/** The app cannot be analyzed as it is: retrying will not help, a change to the app will. */
export class AnalyzeError extends Error {
  readonly code = 'analyze_failed';
  /** Read by the pipeline (backend/lib/errors.ts isPermanent): not retried. */
  readonly permanent = true;
  constructor(message: string) {
    super(message);
    this.name = 'AnalyzeError';
  }
}

/** A transient analyze failure (Railpack's exit code 75, e.g. a network error): retry the job. */
export class AnalyzeRetryableError extends Error {
  readonly code = 'analyze_retryable';
  constructor(message: string) {
    super(message);
    this.name = 'AnalyzeRetryableError';
  }
}

export interface BuildErrorDetails {
  /** The plan step that failed, when the failure belongs to one. */
  step?: string;
  command?: string;
  exitCode?: number | null;
  signal?: NodeJS.Signals | null;
  timedOut?: boolean;
  /** The last lines the failing command (or buildctl) printed. */
  lastLines?: string[];
}

/** A build command failed or timed out: the app's build is broken, not Rhone. */
export class BuildError extends Error {
  readonly code = 'build_failed';
  /** Read by the pipeline (backend/lib/errors.ts isPermanent): the app's build must change. */
  readonly permanent = true;
  readonly step?: string;
  readonly command?: string;
  readonly exitCode?: number | null;
  readonly signal?: NodeJS.Signals | null;
  readonly timedOut: boolean;
  readonly lastLines: string[];
  constructor(message: string, details: BuildErrorDetails = {}) {
    super(message);
    this.name = 'BuildError';
    this.step = details.step;
    this.command = details.command;
    this.exitCode = details.exitCode;
    this.signal = details.signal;
    this.timedOut = details.timedOut ?? false;
    this.lastLines = details.lastLines ?? [];
  }
}

/** The stage was stopped through its AbortSignal (a cancel, or the stage's deadline); its children are dead. One class with the pipeline's cancel. */
export { CanceledError };

const QUOTED_LINE_MAX = 300;

/**
 * The end of a command's output, for a failure reason: the last lines that fit in `maxChars`, each
 * cut to a few hundred characters, so one runaway line cannot push out the lines that explain the
 * failure. The lines must be redacted already.
 */
export function quoteOutput(lines: readonly string[], maxChars = 1200): string[] {
  const out: string[] = [];
  let size = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i].length > QUOTED_LINE_MAX ? `${lines[i].slice(0, QUOTED_LINE_MAX - 1)}…` : lines[i];
    if (size + line.length > maxChars && out.length > 0) break;
    out.unshift(line);
    size += line.length + 3;
  }
  return out;
}

/**
 * The build plan names an image the operator does not allow (RHONE_BUILD_IMAGE_ALLOWLIST), or
 * another Fly app's: the plan (railpack.json) must change, so the build fails at once.
 */
export class PlanImageRefusedError extends Error {
  readonly code = 'plan_image_refused';
  /** Read by the pipeline (backend/lib/errors.ts isPermanent): retrying cannot help. */
  readonly permanent = true;
  constructor(
    message: string,
    readonly image: string,
    readonly where: string,
  ) {
    super(message);
    this.name = 'PlanImageRefusedError';
  }
}
