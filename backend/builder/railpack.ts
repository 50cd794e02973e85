// Production's analyzer: the `railpack prepare` CLI writes the build plan and an info file that
// says what it detected and, when it cannot build the app, why (railwayapp/railpack cli/*.go,
// and core/core.go BuildResult for the info file's keys). The app's
// env vars reach Railpack as bare `--env NAME` flags with the values in the child's environment,
// so no value is ever in argv (core/app/environment.go reads a bare name from the environment).
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { hostEnv } from '../../local/processes.ts';
import { type AnalyzeOverrides, resolveAppDir } from './detect.ts';
import { AnalyzeError, AnalyzeRetryableError, CanceledError } from './errors.ts';
import { type BuildPlan, parseBuildPlan } from './plan.ts';
import { runProcess } from './process.ts';

export { AnalyzeError, AnalyzeRetryableError } from './errors.ts';

/**
 * The Railpack release Rhone is written against (reference: v0.37.0): the CLI the Dockerfile
 * installs (its RAILPACK_VERSION; test/dockerfile.test.ts keeps the two equal), and the version of
 * the frontend image that builds the plans that CLI writes.
 */
export const RAILPACK_VERSION = '0.37.0';

/** railpack-info.json (core/core.go BuildResult; log entries have Go's field names). */
export interface RailpackInfo {
  railpackVersion?: string;
  success: boolean;
  detectedProviders?: string[];
  metadata?: Record<string, string>;
  resolvedPackages?: Record<string, { name?: string; requestedVersion?: string; resolvedVersion?: string; source?: string }>;
  logs?: { Level?: string; Msg?: string; DocsPath?: string }[];
}

export interface RailpackPrepareOptions {
  signal?: AbortSignal;
  /** The app's env vars: build-time values for Railpack (they become plan secrets, by name only). */
  env?: Record<string, string>;
  /** Where to keep railpack-plan.json and railpack-info.json; a temporary directory (removed) when omitted. */
  outDir?: string;
  /** The CLI to run; `railpack` on PATH by default. */
  railpackBin?: string;
  /** Railpack's own analysis output, line by line. */
  log?: (stream: 'stdout' | 'stderr', line: string) => void;
  /**
   * Package versions the app's last live build used (resolvedVersions of its info), passed as
   * `--previous name@version` so a version Railpack picks by default does not float between
   * builds. Railpack uses a previous version only in place of its own default: a version the app
   * asks for (go.mod, .nvmrc, RAILPACK_*_VERSION) still wins (core/resolver/resolver.go, Default).
   */
  previous?: Record<string, string>;
}

export interface RailpackPrepareResult {
  plan: BuildPlan;
  info: RailpackInfo;
  /** The directory analyzed (sourceDir joined with rootDirectory): the build context. */
  appDir: string;
}

// Exit codes of the CLI (railpack cli/*.go): 0 success, 1 a deterministic failure (no provider, no
// start command, bad config), 75 a transient one worth retrying (e.g. a network error fetching mise).
const EXIT_CANNOT_BUILD = 1;
const EXIT_TRANSIENT = 75;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export async function railpackPrepare(sourceDir: string, overrides: AnalyzeOverrides, options: RailpackPrepareOptions = {}): Promise<RailpackPrepareResult> {
  const appDir = await resolveAppDir(sourceDir, overrides.rootDirectory);
  const buildCommand = overrides.buildCommand?.trim() || undefined;
  const startCommand = overrides.startCommand?.trim() || undefined;
  const outDir = options.outDir ?? (await mkdtemp(path.join(os.tmpdir(), 'rhone-railpack-')));
  const planPath = path.join(outDir, 'railpack-plan.json');
  const infoPath = path.join(outDir, 'railpack-info.json');

  // The app's own settings win over RAILPACK_*_CMD in its env vars, which Railpack ranks above flags.
  const appEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (!ENV_NAME.test(name)) continue;
    if ((name === 'RAILPACK_BUILD_CMD' && buildCommand) || (name === 'RAILPACK_START_CMD' && startCommand)) continue;
    appEnv[name] = value;
  }
  // --error-missing-start: an image with no start command boots a bare shell that exits at once;
  // better to fail here, saying so, than to fail the release's health checks later.
  const argv = [options.railpackBin ?? 'railpack', 'prepare', appDir, '--plan-out', planPath, '--info-out', infoPath, '--error-missing-start'];
  for (const name of Object.keys(appEnv).sort()) argv.push('--env', name);
  if (buildCommand) argv.push('--build-cmd', buildCommand);
  if (startCommand) argv.push('--start-cmd', startCommand);
  // --previous is a repeatable string flag of every analysing command (railpack cli/common.go).
  for (const [name, version] of Object.entries(options.previous ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    if (readablePackage(name, version)) argv.push('--previous', `${name}@${version}`);
  }

  const tail: string[] = [];
  try {
    const result = await runProcess(argv, {
      cwd: appDir,
      env: { ...hostEnv(), ...appEnv },
      signal: options.signal,
      onLine: (stream, line) => {
        if (stream === 'stderr') {
          tail.push(line);
          if (tail.length > 20) tail.shift();
        }
        options.log?.(stream, line);
      },
    }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new Error(`the railpack CLI (${argv[0]}) was not found: install it in the worker's image`);
      throw err;
    });
    if (result.aborted) throw new CanceledError('the analysis was canceled', { cause: options.signal?.reason });

    const info = await readInfo(infoPath);
    if (result.code === 0) {
      const plan = parseBuildPlan(JSON.parse(await readFile(planPath, 'utf8')));
      // railpack.json's deploy.startCommand outranks --start-cmd; the app's setting must not.
      if (startCommand) plan.deploy.startCommand = startCommand;
      return { plan, info: info ?? { success: true }, appDir };
    }
    const reason = failureReason(info, tail);
    if (result.code === EXIT_CANNOT_BUILD) throw new AnalyzeError(`Railpack cannot build this app: ${reason}`);
    if (result.code === EXIT_TRANSIENT) throw new AnalyzeRetryableError(`railpack prepare hit a transient failure (exit 75): ${reason}`);
    const how = result.code === null ? `was killed by ${result.signal}` : `exited with code ${result.code}`;
    throw new Error(`railpack prepare ${how}: ${reason}`);
  } finally {
    if (!options.outDir) await rm(outDir, { recursive: true, force: true });
  }
}

/** The installed CLI's version, from `railpack --version` ("railpack version 0.37.0"). */
export async function railpackCliVersion(railpackBin = 'railpack'): Promise<string> {
  const output: string[] = [];
  const result = await runProcess([railpackBin, '--version'], {
    cwd: os.tmpdir(),
    env: hostEnv(),
    timeoutMs: 10_000,
    onLine: (_stream, line) => output.push(line),
  }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new Error(`the railpack CLI (${railpackBin}) was not found: install it in the worker's image`);
    throw err;
  });
  const version = /\bv?(\d+\.\d+\.\d+\S*)/.exec(output.join(' '))?.[1];
  if (result.code !== 0 || !version)
    throw new Error(`\`${railpackBin} --version\` gave no version (exit ${result.code ?? result.signal}): ${output.join(' / ').slice(0, 200)}`);
  return version;
}

/** The info file is written even on failure (`{"success": false, "logs": [...]}`); it may also be missing. */
async function readInfo(infoPath: string): Promise<RailpackInfo | undefined> {
  try {
    const value = JSON.parse(await readFile(infoPath, 'utf8')) as unknown;
    return typeof value === 'object' && value !== null ? (value as RailpackInfo) : undefined;
  } catch {
    return undefined;
  }
}

/** Railpack's error log entries (with their docs links), else what it printed on stderr. */
export function failureReason(info: RailpackInfo | undefined, stderrTail: string[]): string {
  const errors = (info?.logs ?? []).filter((l) => l.Level?.toLowerCase() === 'error' && l.Msg);
  if (errors.length) {
    return errors.map((l) => (l.DocsPath ? `${l.Msg} (see ${docsUrl(l.DocsPath)})` : l.Msg)).join('; ');
  }
  const lines = stderrTail.map((l) => l.trim()).filter(Boolean);
  return lines.length ? lines.slice(-5).join(' / ') : 'it gave no reason';
}

function docsUrl(docsPath: string): string {
  return /^https?:\/\//.test(docsPath) ? docsPath : `https://railpack.com/${docsPath.replace(/^\/+/, '')}`;
}

/**
 * What `--previous` takes back, from an info file: each package's resolvedVersion
 * (resolvedPackages, core/resolver/resolver.go ResolvedPackage). Railpack reads a `--previous`
 * value by splitting it on "@" (internal/utils/utils.go ParsePackageWithVersion), so a name or
 * version that holds one, or a space, is left out rather than misread.
 */
export function resolvedVersions(info: RailpackInfo | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, pkg] of Object.entries(info?.resolvedPackages ?? {})) {
    const name = pkg?.name ?? key;
    const version = pkg?.resolvedVersion;
    if (typeof version === 'string' && readablePackage(name, version)) out[name] = version;
  }
  return out;
}

function readablePackage(name: string, version: string): boolean {
  const part = /^[^\s@]+$/;
  return part.test(name) && part.test(version) && version !== 'latest';
}

/** The frontend image matching the CLI that wrote a plan: the two must be the same Railpack version, as the plan format follows it. */
export function railpackFrontendImage(railpackVersion: string): string {
  return `ghcr.io/railwayapp/railpack-frontend:v${railpackVersion.replace(/^v/, '')}`;
}
