// Local mode's analyzer: looks at the app's root directory the way Railpack does (its provider
// order, its start-command precedence) and writes the same build plan format. Production runs the
// real Railpack instead (railpack.ts).
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { AppDir } from './app-dir.ts';
import { AnalyzeError } from './errors.ts';
import { type BuildPlan, type Step, isExecCommand, shellCommand } from './plan.ts';
import { PYTHON_MAIN_FILES, type ProviderResult, bareplan, goPlan, nodePlan, pythonPlan, shellPlan, staticPlan, staticRoot } from './providers.ts';

export { AnalyzeError } from './errors.ts';

export type Provider = 'golang' | 'python' | 'node' | 'staticfile' | 'shell' | 'procfile' | 'custom';

export interface AnalyzeOverrides {
  /** The app's directory inside the repository ("" or undefined: the root). */
  rootDirectory?: string | null;
  buildCommand?: string | null;
  startCommand?: string | null;
}

export interface DetectResult {
  provider: Provider;
  plan: BuildPlan;
  /** The directory the plan applies to (sourceDir joined with rootDirectory): the build's source. */
  appDir: string;
}

interface ProviderEntry {
  name: string;
  /** What a user would call it, and what gave it away. */
  label: string;
  detect: (app: AppDir) => boolean | Promise<boolean>;
  plan?: (app: AppDir) => Promise<ProviderResult>;
}

const hasAny = (app: AppDir, names: string[]) => names.some((n) => app.hasFile(n));

// Railpack's order (core/providers/provider.go): the first provider that matches is used. The ones
// local mode cannot build natively are kept so that an app is recognised as what Railpack would
// call it, rather than as whatever supported language happens to come later.
const PROVIDERS: ProviderEntry[] = [
  { name: 'php', label: 'a PHP app (index.php or composer.json)', detect: (a) => hasAny(a, ['index.php', 'composer.json']) },
  { name: 'golang', label: 'a Go app (go.mod)', detect: (a) => hasAny(a, ['go.mod', 'go.work', 'main.go']), plan: goPlan },
  {
    name: 'java',
    label: 'a Java app (Maven or Gradle)',
    detect: (a) => [...a.entries].some((n) => /^pom\.(xml|atom|clj|groovy|rb|scala|yaml|yml)$/.test(n)) || a.hasFile('gradlew'),
  },
  { name: 'rust', label: 'a Rust app (Cargo.toml)', detect: (a) => a.hasFile('Cargo.toml') },
  { name: 'ruby', label: 'a Ruby app (Gemfile)', detect: (a) => a.hasFile('Gemfile') },
  { name: 'elixir', label: 'an Elixir app (mix.exs)', detect: (a) => a.hasFile('mix.exs') },
  {
    name: 'python',
    label: 'a Python app',
    detect: (a) => hasAny(a, [...PYTHON_MAIN_FILES, 'requirements.txt', 'pyproject.toml', 'Pipfile']),
    plan: pythonPlan,
  },
  { name: 'deno', label: 'a Deno app (deno.json)', detect: (a) => hasAny(a, ['deno.json', 'deno.jsonc']) },
  { name: 'dotnet', label: 'a .NET app (*.csproj)', detect: (a) => [...a.entries].some((n) => n.endsWith('.csproj')) },
  { name: 'node', label: 'a Node app (package.json)', detect: (a) => a.hasFile('package.json'), plan: nodePlan },
  { name: 'gleam', label: 'a Gleam app (gleam.toml)', detect: (a) => a.hasFile('gleam.toml') },
  { name: 'cpp', label: 'a C++ app (CMakeLists.txt or meson.build)', detect: (a) => hasAny(a, ['CMakeLists.txt', 'meson.build']) },
  { name: 'staticfile', label: 'a static site', detect: async (a) => (await staticRoot(a)) !== undefined, plan: staticPlan },
  { name: 'shell', label: 'a shell app (start.sh)', detect: (a) => a.hasFile('start.sh'), plan: shellPlan },
];

const LOOKED_FOR =
  'package.json (Node), go.mod or main.go (Go), requirements.txt, pyproject.toml, Pipfile or main.py/app.py (Python), ' +
  'index.html or a public/ directory (static site), start.sh, or a Procfile';

export async function detectPlan(sourceDir: string, overrides: AnalyzeOverrides = {}): Promise<DetectResult> {
  const appDir = await resolveAppDir(sourceDir, overrides.rootDirectory);
  const app = await AppDir.open(appDir);
  const buildCommand = overrides.buildCommand?.trim() || undefined;
  const startOverride = overrides.startCommand?.trim() || undefined;
  const procfileStart = await procfileCommand(app);
  const where = overrides.rootDirectory?.trim() ? `the root directory "${overrides.rootDirectory}"` : 'the repository root';

  let provider: Provider | undefined;
  let result: ProviderResult | undefined;
  for (const entry of PROVIDERS) {
    if (!(await entry.detect(app))) continue;
    if (!entry.plan) {
      if (startOverride) break; // the app says how to build and start it: a custom plan below
      throw new AnalyzeError(
        `This looks like ${entry.label}. Local mode builds Node, Go, Python, static sites, start.sh and Procfile apps ` +
          'with the tools on this machine, not this kind. Set a build command and a start command for the app, ' +
          'or deploy it in production, where Railpack builds it.',
      );
    }
    provider = entry.name as Provider;
    result = await entry.plan(app);
    break;
  }

  let plan: BuildPlan;
  if (result && provider) {
    if (result.buildProblem && !buildCommand) throw new AnalyzeError(result.buildProblem);
    plan = result.plan;
  } else if (procfileStart || startOverride) {
    provider = startOverride && !procfileStart ? 'custom' : 'procfile';
    plan = bareplan();
  } else {
    throw new AnalyzeError(
      `Rhone could not tell how to build this app: it looked in ${where} for ${LOOKED_FOR}, and found none (${app.describe()}). ` +
        "Add one of them, set the app's root directory if the app lives in a subdirectory, or set a start command " +
        "(and a build command if it needs one) in the app's settings.",
    );
  }

  // Start command precedence, highest first: the app's setting, the Procfile, the provider's default.
  const startCommand = startOverride ?? procfileStart ?? plan.deploy.startCommand;
  if (!startCommand) {
    const help = result?.startHelp ? `${result.startHelp}, ` : '';
    throw new AnalyzeError(
      `Found ${PROVIDERS.find((p) => p.name === provider)?.label ?? 'the app'} but no start command: ` +
        `${help}add a Procfile with a "web:" line, or set the app's start command.`,
    );
  }
  plan.deploy.startCommand = startCommand;
  if (buildCommand) plan.steps = withBuildCommand(plan.steps ?? [], buildCommand);
  return { provider, plan, appDir };
}

/**
 * The build command replaces the build step's commands, as RAILPACK_BUILD_CMD does; commands
 * that are not shell commands (files, PATH entries) stay, since the app needs them to run.
 */
function withBuildCommand(steps: Step[], buildCommand: string): Step[] {
  return steps.map((step) => {
    if (step.name !== 'build') return step;
    const kept = (step.commands ?? []).filter((c) => !isExecCommand(c));
    return { ...step, commands: [...kept, shellCommand(buildCommand)] };
  });
}

/** The Procfile's `web` command, else `worker`, else its first entry (core/providers/procfile). */
export async function procfileCommand(app: AppDir): Promise<string | undefined> {
  const text = await app.readText('Procfile');
  if (!text) return undefined;
  const entries = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = line.match(/^\s*([A-Za-z0-9_-]+)\s*:\s*(.+?)\s*$/);
    if (m && !entries.has(m[1])) entries.set(m[1], m[2]);
  }
  return entries.get('web') ?? entries.get('worker') ?? entries.values().next().value;
}

export async function resolveAppDir(sourceDir: string, rootDirectory: string | null | undefined): Promise<string> {
  // A leading "/" or "./" means the repository root, as in Railway's and Render's settings.
  const root = (rootDirectory ?? '')
    .trim()
    .replace(/^\.?\/+/, '')
    .replace(/\/+$/, '');
  if (!root || root === '.') return sourceDir;
  const resolved = path.resolve(sourceDir, root);
  if (root.split(/[\\/]/).includes('..') || !resolved.startsWith(path.resolve(sourceDir) + path.sep)) {
    throw new AnalyzeError(`The root directory "${rootDirectory}" must be a path inside the repository, like "apps/web".`);
  }
  const info = await stat(resolved).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new AnalyzeError(`The root directory "${rootDirectory}" does not exist in the repository at this commit; fix the app's root directory setting.`);
  }
  // A symlink in the repository must not lead the build outside it.
  const [real, realSource] = await Promise.all([realpath(resolved), realpath(sourceDir)]);
  if (!real.startsWith(realSource + path.sep)) {
    throw new AnalyzeError(`The root directory "${rootDirectory}" leads outside the repository (through a symlink); point it at a real directory.`);
  }
  return resolved;
}
