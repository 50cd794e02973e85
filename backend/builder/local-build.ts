// Local mode's build: runs a Railpack plan's commands natively, in a workspace of its own, and
// stores the result as a local image (local/images.ts). The workspace plays the container's
// /app: paths under /app in the plan mean the workspace, paths under /root mean the build's own
// HOME. Build commands get a minimal environment (PATH, their own HOME and TMPDIR, the plan's
// variables and the app's build-time secrets), never the control plane's.
import { chmod, cp, mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { imageDir, imageRef, storeImage } from '../../local/images.ts';
import type { TreeLimits } from '../source/limits.ts';
import { hostEnv } from '../../local/processes.ts';
import { CanceledError, BuildError, quoteOutput } from './errors.ts';
import { type BuildPlan, type Step, isCopyCommand, isExecCommand, isFileCommand, isPathCommand } from './plan.ts';
import { runProcess } from './process.ts';
import { createRedactor, type Redactor } from '../deployments/redact.ts';
import { orderSteps, sourceFilter } from './plan-order.ts';
import { imageCommand } from './start-command.ts';

export { CanceledError, BuildError } from './errors.ts';

export type LogStream = 'stdout' | 'stderr' | 'system';

export interface BuildLocalOptions {
  /** The app's directory (detectPlan's appDir): copied, never modified. */
  sourceDir: string;
  plan: BuildPlan;
  dataDir: string;
  imageName: string;
  tag: string;
  signal?: AbortSignal;
  /** The longest one plan step may run. */
  stepTimeoutMs: number;
  log: (stream: LogStream, line: string) => void;
  /** Values for the plan's secrets (the app's env vars), exposed to steps that ask for them, as Railpack does. */
  secrets?: Record<string, string>;
  /** Caps on the stored image (RHONE_MAX_ARTIFACT_*). */
  limits?: TreeLimits;
}

const TAIL_LINES = 20;

export async function buildLocal(options: BuildLocalOptions): Promise<{ image: string; durationMs: number }> {
  const started = performance.now();
  const { plan, dataDir, signal } = options;
  throwIfCanceled(signal);
  const image = imageRef(options.imageName, options.tag);
  const finalDir = imageDir(dataDir, image); // validates the name and tag before any work
  const steps = orderSteps(plan.steps ?? []);
  const startCommand = plan.deploy.startCommand?.trim();
  if (!startCommand) throw new BuildError('the build plan has no start command (deploy.startCommand), so the image could not be run');

  await mkdir(path.join(dataDir, 'builds'), { recursive: true });
  const buildRoot = await mkdtemp(path.join(dataDir, 'builds', `${options.imageName}-`));
  const workspace = path.join(buildRoot, 'app');
  const home = path.join(buildRoot, 'home');
  const tmp = path.join(buildRoot, 'tmp');
  const log = guardedLog(options.log);
  try {
    await Promise.all([mkdir(home), mkdir(tmp)]);
    log('system', 'copying the source into a fresh build workspace');
    await cp(options.sourceDir, workspace, { recursive: true, verbatimSymlinks: true, filter: sourceFilter(options.sourceDir, plan.exclude) });

    // The commands' output is redacted as it is read, before it is cut into lines: the log and the
    // "last output" a failure quotes never hold a secret, whole or in halves.
    const redact = createRedactor(Object.values(options.secrets ?? {}));
    const ctx: StepContext = { ...options, log, redact, workspace, home, tmp, outputs: new Map() };
    for (const step of steps) {
      throwIfCanceled(signal);
      await runStep(ctx, step);
    }

    // The image runs from finalDir, and the build's HOME is gone by then: only /app is mapped.
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(plan.deploy.variables ?? {})) env[k] = mapVariable(v, finalDir);
    // A local image runs with the host's PATH, which an image env PATH replaces: keep it at the end.
    const imagePaths = (plan.deploy.paths ?? []).map((p) => (path.isAbsolute(p) ? mapVariable(p, finalDir) : path.join(finalDir, p)));
    if (imagePaths.length) env.PATH = [...imagePaths, hostEnv().PATH ?? ''].join(':');
    throwIfCanceled(signal);
    log.rethrow();
    await storeImage(dataDir, options.imageName, options.tag, workspace, { cmd: imageCommand(startCommand), env, limits: options.limits });
    const durationMs = Math.round(performance.now() - started);
    log('system', `stored image ${image} (${(durationMs / 1000).toFixed(1)} s)`);
    return { image, durationMs };
  } finally {
    await rm(buildRoot, { recursive: true, force: true });
  }
}

interface StepContext extends BuildLocalOptions {
  workspace: string;
  home: string;
  tmp: string;
  log: GuardedLog;
  redact: Redactor;
  /** What each finished step hands to the steps built on it: its variables and PATH entries. */
  outputs: Map<string, { variables: Record<string, string>; paths: string[] }>;
}

async function runStep(ctx: StepContext, step: Step): Promise<void> {
  const { workspace, home } = ctx;
  const deadline = performance.now() + ctx.stepTimeoutMs;
  // Like a container layer, a step starts from its inputs' environment.
  const variables: Record<string, string> = {};
  const paths: string[] = [];
  for (const input of step.inputs ?? []) {
    const from = input.step ? ctx.outputs.get(input.step) : undefined;
    if (!from) continue;
    Object.assign(variables, from.variables);
    paths.unshift(...from.paths.filter((p) => !paths.includes(p)));
  }
  for (const [k, v] of Object.entries(step.variables ?? {})) variables[k] = mapVariable(v, workspace, home);
  await linkCaches(ctx, step);

  for (const command of step.commands ?? []) {
    throwIfCanceled(ctx.signal);
    if (isExecCommand(command)) {
      const env = { ...commandEnv(ctx, step, variables), PATH: [...paths, hostEnv().PATH ?? ''].join(':') };
      await runExec(ctx, step, command.customName ?? command.cmd, command.cmd, env, deadline);
    } else if (isFileCommand(command)) {
      const target = mapPath(command.path, workspace, home);
      if (!isInside(target, workspace) && !isInside(target, home)) {
        ctx.log('system', `[${step.name}] skipped writing ${command.path}: local builds write only inside the workspace`);
        continue;
      }
      const content = step.assets?.[command.name];
      if (content === undefined)
        throw new BuildError(`step "${step.name}" writes the asset "${command.name}", which the plan does not define`, { step: step.name });
      ctx.log('system', `[${step.name}] ${command.customName ?? `write ${command.path}`}`);
      await mkdir(path.dirname(target), { recursive: true });
      // A symlinked directory in the source must not carry the write outside the build.
      const realParent = await realpath(path.dirname(target));
      if (!isInside(realParent, await realpath(workspace)) && !isInside(realParent, await realpath(home))) {
        throw new BuildError(`step "${step.name}" writes ${command.path}, which a symlink in the source points outside the build`, { step: step.name });
      }
      await writeFile(target, content);
      if (command.mode !== undefined) await chmod(target, command.mode);
    } else if (isCopyCommand(command)) {
      // The whole source is already in the workspace, so copying a file onto itself is a no-op.
      if (command.image) {
        ctx.log('system', `[${step.name}] skipped copying ${command.src} from the image ${command.image}: local builds use no images`);
      } else if (path.normalize(command.src) !== path.normalize(command.dest)) {
        const to = mapPath(command.dest, workspace, home);
        if (!isInside(to, workspace)) {
          ctx.log('system', `[${step.name}] skipped copying to ${command.dest}: local builds write only inside the workspace`);
          continue;
        }
        // Railpack copies from the build context: the source as cloned, not as earlier steps left it.
        const from = path.join(ctx.sourceDir, command.src);
        if (!isInside(from, ctx.sourceDir)) throw new BuildError(`step "${step.name}" copies ${command.src}, which is outside the source`, { step: step.name });
        await cp(from, to, { recursive: true, verbatimSymlinks: true }).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
          throw new BuildError(`step "${step.name}" copies ${command.src}, which is not in the source`, { step: step.name });
        });
      }
    } else if (isPathCommand(command)) {
      paths.unshift(mapPath(command.path, workspace, home));
    }
  }
  ctx.outputs.set(step.name, { variables, paths });
}

function commandEnv(ctx: StepContext, step: Step, variables: Record<string, string>): Record<string, string> {
  const { PATH: _path, HOME: _home, TMPDIR: _tmp, ...kept } = hostEnv();
  const allowed = step.secrets ?? ['*'];
  const secrets: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx.secrets ?? {})) if (allowed.includes('*') || allowed.includes(k)) secrets[k] = v;
  return { ...kept, ...secrets, ...variables, HOME: ctx.home, TMPDIR: ctx.tmp };
}

async function runExec(ctx: StepContext, step: Step, label: string, cmd: string, env: Record<string, string>, deadline: number): Promise<void> {
  ctx.log('system', `==> [${step.name}] ${label}`);
  const tail: string[] = [];
  const result = await runProcess(['sh', '-c', cmd], {
    cwd: ctx.workspace,
    env,
    signal: ctx.signal,
    timeoutMs: deadline - performance.now(),
    redact: ctx.redact,
    onLine: (stream, line) => {
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
      ctx.log(stream, line);
    },
  });
  ctx.log.rethrow();
  if (result.aborted) throw new CanceledError(`the build was canceled during step "${step.name}"`, { cause: ctx.signal?.reason });
  const details = { step: step.name, command: label, exitCode: result.code, signal: result.signal, lastLines: tail };
  const output = tail.length
    ? `\nlast output:\n${quoteOutput(tail)
        .map((l) => `  ${l}`)
        .join('\n')}`
    : '';
  if (result.timedOut) {
    throw new BuildError(
      `step "${step.name}" timed out after ${formatMs(ctx.stepTimeoutMs)} while running \`${label}\`; the build was stopped. ` +
        `Make the step faster, or raise the build step timeout.${output}`,
      { ...details, timedOut: true },
    );
  }
  if (result.code === 0) return;
  const how = result.code === null ? `was killed by ${result.signal}` : `exited with code ${result.code}`;
  const hint = result.code === 127 ? " (command not found: is it installed on the machine running Rhone's local builds?)" : '';
  throw new BuildError(`step "${step.name}" failed: \`${label}\` ${how}${hint}${output}`, details);
}

/**
 * Plan caches under /root (package manager caches) live on in dataDir between builds, as
 * BuildKit's cache mounts do; the build's HOME links to them. Locked caches and caches inside
 * the workspace are not shared: the first would need a lock, the second would end up in the image.
 */
async function linkCaches(ctx: StepContext, step: Step): Promise<void> {
  for (const name of step.caches ?? []) {
    const cache = ctx.plan.caches?.[name];
    if (!cache || cache.type === 'locked' || !cache.directory.startsWith('/root/')) continue;
    if (!/^[A-Za-z0-9._-]+$/.test(name)) continue;
    const shared = path.join(ctx.dataDir, 'build-cache', name);
    const link = mapPath(cache.directory, ctx.workspace, ctx.home);
    await mkdir(shared, { recursive: true });
    await mkdir(path.dirname(link), { recursive: true });
    await symlink(shared, link).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
}

/** Container paths to host paths: /app → the app directory, /root → the build's HOME, relative → the app directory. */
export function mapPath(p: string, appDir: string, home: string): string {
  if (p === '/app' || p.startsWith('/app/')) return path.join(appDir, p.slice(4));
  if (p === '/root' || p.startsWith('/root/')) return path.join(home, p.slice(5));
  if (!path.isAbsolute(p)) return path.join(appDir, p);
  return p;
}

/** A variable's value is mapped only when it is a container path (VIRTUAL_ENV=/app/.venv), never when relative. */
export function mapVariable(value: string, appDir: string, home?: string): string {
  if (value === '/app' || value.startsWith('/app/')) return path.join(appDir, value.slice(4));
  if (home && (value === '/root' || value.startsWith('/root/'))) return path.join(home, value.slice(5));
  return value;
}

function isInside(p: string, dir: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function throwIfCanceled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CanceledError('the build was canceled', { cause: signal.reason });
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 100) / 10} s` : `${ms} ms`;
}

type GuardedLog = ((stream: LogStream, line: string) => void) & { rethrow(): void };

// The log callback runs inside stream handlers: an exception there would crash the worker. Keep
// the first one and fail the build with it at the next safe point instead.
function guardedLog(log: BuildLocalOptions['log']): GuardedLog {
  let failure: unknown;
  const guarded = ((stream: LogStream, line: string) => {
    if (failure !== undefined) return;
    try {
      log(stream, line);
    } catch (err) {
      failure = err ?? new Error('the build log callback failed');
    }
  }) as GuardedLog;
  guarded.rethrow = () => {
    if (failure !== undefined) throw failure;
  };
  return guarded;
}
