// Local mode's providers: for each language Rhone builds natively, how to recognise it and the
// Railpack-shaped plan that builds it. The shapes follow Railpack's own providers (core/providers)
// so a plan reads the same in both modes; commands use the host's toolchains (`python3`, `go`,
// `npm`…), and paths under /app (Railpack's WORKDIR) mean the build workspace locally.
import { readFile } from 'node:fs/promises';
import type { AppDir } from './app-dir.ts';
import { AnalyzeError } from './errors.ts';
import { type BuildPlan, type Command, RAILPACK_BUILDER_IMAGE, RAILPACK_RUNTIME_IMAGE, type Step, shellQuote } from './plan.ts';

export interface ProviderResult {
  plan: BuildPlan;
  /** Help for a missing start command, specific to the provider. */
  startHelp: string;
  /** Why the plan's build step cannot work as detected: an error unless the app sets a build command. */
  buildProblem?: string;
}

const builderImage = { image: RAILPACK_BUILDER_IMAGE };
const localSource = { local: true, include: ['.'] };

/** The shape every local plan shares: an optional install step, a build step with the source, deploy of the build. */
function planOf(parts: {
  install?: Omit<Step, 'name'>;
  build?: Omit<Step, 'name' | 'inputs'>;
  caches?: BuildPlan['caches'];
  startCommand?: string;
  variables?: Record<string, string>;
  paths?: string[];
}): BuildPlan {
  const steps: Step[] = [];
  if (parts.install) steps.push({ name: 'install', inputs: [builderImage], ...parts.install });
  steps.push({
    name: 'build',
    inputs: parts.install ? [{ step: 'install' }, localSource] : [builderImage, localSource],
    secrets: ['*'],
    ...parts.build,
  });
  return {
    ...(parts.caches ? { caches: parts.caches } : {}),
    steps,
    deploy: {
      base: { image: RAILPACK_RUNTIME_IMAGE },
      inputs: [{ step: 'build', include: ['.'] }],
      ...(parts.startCommand ? { startCommand: parts.startCommand } : {}),
      ...(parts.variables ? { variables: parts.variables } : {}),
      ...(parts.paths ? { paths: parts.paths } : {}),
    },
  };
}

// ---- Node (core/providers/node) ----

interface PackageJson {
  scripts?: Record<string, string>;
  main?: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  packageManager?: string;
}

type PackageManager = 'npm' | 'pnpm' | 'yarn' | 'bun';

function packageManagerOf(app: AppDir, pkg: PackageJson): { pm: PackageManager; lockfile?: string } {
  if (app.hasFile('pnpm-lock.yaml')) return { pm: 'pnpm', lockfile: 'pnpm-lock.yaml' };
  if (app.hasFile('bun.lockb')) return { pm: 'bun', lockfile: 'bun.lockb' };
  if (app.hasFile('bun.lock')) return { pm: 'bun', lockfile: 'bun.lock' };
  if (app.hasFile('yarn.lock')) return { pm: 'yarn', lockfile: 'yarn.lock' };
  if (app.hasFile('package-lock.json')) return { pm: 'npm', lockfile: 'package-lock.json' };
  const declared = pkg.packageManager?.split('@')[0];
  if (declared === 'pnpm' || declared === 'yarn' || declared === 'bun') return { pm: declared };
  return { pm: 'npm' };
}

function installCommand(pm: PackageManager, lockfile: string | undefined): string {
  switch (pm) {
    case 'npm':
      return lockfile ? 'npm ci' : 'npm install';
    case 'pnpm':
      return lockfile ? 'pnpm install --frozen-lockfile --prefer-offline' : 'pnpm install';
    case 'bun':
      return 'bun install --frozen-lockfile';
    case 'yarn':
      return lockfile ? 'yarn install --frozen-lockfile' : 'yarn install';
  }
}

const INSTALL_CACHES: Record<PackageManager, { name: string; directory: string }> = {
  npm: { name: 'npm-install', directory: '/root/.npm' },
  pnpm: { name: 'pnpm-install', directory: '/root/.local/share/pnpm/store/v3' },
  bun: { name: 'bun-install', directory: '/root/.bun/install/cache' },
  yarn: { name: 'yarn-install', directory: '/root/.cache/yarn' },
};

const NODE_INSTALL_FILES = [
  'package.json',
  'package-lock.json',
  'pnpm-lock.yaml',
  'pnpm-workspace.yaml',
  'yarn.lock',
  'bun.lockb',
  'bun.lock',
  '.npmrc',
  '.yarnrc.yml',
  '.nvmrc',
  '.node-version',
];

export async function nodePlan(app: AppDir): Promise<ProviderResult> {
  const { value, error } = await app.readJson('package.json');
  if (error || typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AnalyzeError(`package.json is not valid JSON (${error ?? 'not an object'}); fix it and deploy again.`);
  }
  const pkg = value as PackageJson;
  const { pm, lockfile } = packageManagerOf(app, pkg);
  const run = (script: string) => `${pm} run ${script}`;
  const variables: Record<string, string> = {
    NODE_ENV: 'production',
    NPM_CONFIG_PRODUCTION: 'false',
    NPM_CONFIG_UPDATE_NOTIFIER: 'false',
    NPM_CONFIG_FUND: 'false',
    NPM_CONFIG_FETCH_RETRIES: '5',
    CI: 'true',
    ...(pm === 'yarn' ? { YARN_PRODUCTION: 'false' } : {}),
  };
  // Railpack installs even an app without dependencies; locally that would only cost time.
  const hasDeps = Object.keys(pkg.dependencies ?? {}).length + Object.keys(pkg.devDependencies ?? {}).length > 0;
  const cache = INSTALL_CACHES[pm];
  const installCommands: Command[] = [{ path: '/app/node_modules/.bin' }];
  if (hasDeps) {
    for (const file of NODE_INSTALL_FILES) if (app.hasFile(file)) installCommands.push({ src: file, dest: file });
    installCommands.push({ cmd: installCommand(pm, lockfile) });
  }
  const scripts = pkg.scripts ?? {};
  let startCommand: string | undefined;
  if (scripts.start) startCommand = run('start');
  else if (pkg.main) startCommand = `${pm === 'bun' ? 'bun' : 'node'} ${pkg.main}`;
  else if (app.hasFile('index.js')) startCommand = `${pm === 'bun' ? 'bun' : 'node'} index.js`;
  else if (app.hasFile('index.ts')) startCommand = `${pm === 'bun' ? 'bun' : 'node'} index.ts`;
  return {
    plan: planOf({
      caches: hasDeps ? { [cache.name]: { directory: cache.directory, type: 'shared' } } : undefined,
      install: {
        commands: installCommands,
        variables,
        secrets: [],
        ...(hasDeps ? { caches: [cache.name] } : {}),
      },
      build: scripts.build ? { commands: [{ cmd: run('build') }] } : {},
      startCommand,
      variables,
      paths: ['/app/node_modules/.bin'],
    }),
    startHelp: 'add a "start" script or a "main" entry to package.json, or an index.js',
  };
}

// ---- Go (core/providers/golang) ----

export async function goPlan(app: AppDir): Promise<ProviderResult> {
  // The build target, as Railpack picks it: the root package, else the first cmd/* directory.
  let target = '';
  let buildProblem: string | undefined;
  const rootHasGo = [...app.entries].some((n) => n.endsWith('.go'));
  if (!rootHasGo) {
    const cmds = await app.subdirs('cmd');
    const withGo: string[] = [];
    for (const dir of cmds) if (await app.dirHasFile(`cmd/${dir}`, (f) => f.endsWith('.go'))) withGo.push(dir);
    if (withGo.length) target = ` ./cmd/${withGo[0]}`;
    else {
      buildProblem =
        'Found a Go module (go.mod) but no main package: Rhone builds the package at the root or the first one under cmd/. ' +
        'Add a main.go, or set a build command that writes the program to ./out.';
    }
  }
  const hasSum = app.hasFile('go.sum');
  const installCommands: Command[] = [];
  if (app.hasFile('go.mod')) installCommands.push({ src: 'go.mod', dest: 'go.mod' });
  if (hasSum) installCommands.push({ src: 'go.sum', dest: 'go.sum' }, { cmd: 'go mod download' });
  return {
    plan: planOf({
      caches: { 'go-build': { directory: '/root/.cache/go-build', type: 'shared' } },
      install: {
        commands: installCommands,
        // -modcacherw: Go makes its module cache read-only, which would stop the workspace from being removed.
        variables: { CGO_ENABLED: '0', GOFLAGS: '-modcacherw' },
        caches: ['go-build'],
        secrets: ['*'],
      },
      build: { commands: [{ cmd: `go build -ldflags="-w -s" -o out${target}` }], caches: ['go-build'] },
      startCommand: './out',
    }),
    startHelp: '',
    buildProblem,
  };
}

// ---- Python (core/providers/python) ----

export const PYTHON_MAIN_FILES = ['main.py', 'app.py', 'start.py', 'bot.py', 'hello.py', 'server.py'];

export async function pythonPlan(app: AppDir): Promise<ProviderResult> {
  const variables = {
    PYTHONFAULTHANDLER: '1',
    PYTHONUNBUFFERED: '1',
    PYTHONHASHSEED: 'random',
    PYTHONDONTWRITEBYTECODE: '1',
    PIP_DISABLE_PIP_VERSION_CHECK: '1',
    PIP_DEFAULT_TIMEOUT: '100',
  };
  const installCommands: Command[] = [];
  let needsSource = false;
  if (app.hasFile('requirements.txt')) {
    installCommands.push({ src: 'requirements.txt', dest: 'requirements.txt' }, { cmd: 'pip install -r requirements.txt' });
  } else if (app.hasFile('pyproject.toml')) {
    needsSource = true; // `pip install .` builds the project itself
    installCommands.push({ cmd: 'pip install .' });
  } else if (app.hasFile('Pipfile')) {
    installCommands.push({ src: 'Pipfile', dest: 'Pipfile' });
    if (app.hasFile('Pipfile.lock')) installCommands.push({ src: 'Pipfile.lock', dest: 'Pipfile.lock' });
    installCommands.push({ cmd: 'pip install pipenv && pipenv install --system --deploy' });
  }
  // The venv gives the image a `python` on PATH even when there is nothing to install (hosts
  // often have only python3); without pip it takes a fraction of a second to create.
  const venv = installCommands.length ? 'python3 -m venv .venv' : 'python3 -m venv --without-pip .venv';
  const main = PYTHON_MAIN_FILES.find((f) => app.hasFile(f));
  return {
    plan: planOf({
      caches: installCommands.length ? { pip: { directory: '/root/.cache/pip', type: 'shared' } } : undefined,
      install: {
        ...(needsSource ? { inputs: [builderImage, localSource] } : {}),
        commands: [{ cmd: venv }, { path: '/app/.venv/bin' }, ...installCommands],
        variables: { ...variables, VIRTUAL_ENV: '/app/.venv' },
        ...(installCommands.length ? { caches: ['pip'] } : {}),
      },
      startCommand: main ? `python ${main}` : undefined,
      variables: { ...variables, VIRTUAL_ENV: '/app/.venv' },
      paths: ['/app/.venv/bin'],
    }),
    startHelp: `add one of ${PYTHON_MAIN_FILES.join(', ')}`,
  };
}

// ---- Static sites (core/providers/staticfile), served by Rhone's own small server ----

export const STATIC_SERVER_PATH = '.rhone/static-server.mjs';
const STATIC_SERVER_ASSET = 'static-server.mjs';

/** The root Railpack would serve: `root:` in a Staticfile, else public/, else the app root with index.html. */
export async function staticRoot(app: AppDir): Promise<string | undefined> {
  const staticfile = await app.readText('Staticfile');
  const root = staticfile?.match(/^\s*root\s*:\s*(.+?)\s*$/m)?.[1]?.replace(/^["']|["']$/g, '');
  if (root) return root;
  if (app.hasDir('public')) return 'public';
  if (app.hasFile('index.html')) return '.';
  return undefined;
}

export async function staticPlan(app: AppDir): Promise<ProviderResult> {
  const root = (await staticRoot(app)) ?? '.';
  if (root.split(/[\\/]/).includes('..') || root.startsWith('/')) {
    throw new AnalyzeError(`The Staticfile root "${root}" must be a directory inside the app; fix the root: line.`);
  }
  // Shipped through the plan as an asset, the way Railpack ships its Caddyfile.
  const server = await readFile(new URL('./static-server.mjs', import.meta.url), 'utf8');
  return {
    plan: planOf({
      build: {
        commands: [{ path: STATIC_SERVER_PATH, name: STATIC_SERVER_ASSET, customName: 'write the static file server' }],
        assets: { [STATIC_SERVER_ASSET]: server },
      },
      startCommand: `node ${STATIC_SERVER_PATH} ${/^[\w./-]+$/.test(root) ? root : shellQuote(root)}`,
    }),
    startHelp: '',
  };
}

// ---- Shell (core/providers/shell): start.sh, run with its shebang's interpreter ----

export async function shellPlan(app: AppDir): Promise<ProviderResult> {
  const first = (await app.readText('start.sh'))?.split('\n', 1)[0] ?? '';
  const shebang = first.match(/^#!\s*(\S+)(?:\s+(\S+))?/);
  // `#!/usr/bin/env bash` names the interpreter in its argument.
  const interpreter = shebang ? (shebang[1].endsWith('/env') && shebang[2] ? shebang[2] : shebang[1].split('/').pop()) : 'sh';
  return { plan: planOf({ startCommand: `${interpreter} start.sh` }), startHelp: '' };
}

/** A plan with no language: the source as it is, started by a Procfile or the app's start command. */
export function bareplan(startCommand?: string): BuildPlan {
  return planOf({ startCommand });
}
