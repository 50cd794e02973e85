// Local mode's detector: the provider Railpack would pick, the plan it writes (Railpack's format),
// the start command precedence, the app's overrides, and messages a user can act on.
import assert from 'node:assert/strict';
import { symlinkSync } from 'node:fs';
import path from 'node:path';
import { AnalyzeError, detectPlan } from '../backend/builder/detect.ts';
import { type BuildPlan, buildPlanSchema, isExecCommand, parseBuildPlan } from '../backend/builder/plan.ts';
import { cleanupTemp, repo, root } from './builder-support.ts';

const execs = (plan: BuildPlan, step: string) =>
  (plan.steps ?? [])
    .find((s) => s.name === step)
    ?.commands?.filter(isExecCommand)
    .map((c) => c.cmd) ?? [];

async function rejectsAnalyze(promise: Promise<unknown>, ...patterns: RegExp[]) {
  const err = await promise.then(
    () => assert.fail('expected an AnalyzeError'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof AnalyzeError, `expected an AnalyzeError, got ${String(err)}`);
  for (const p of patterns) assert.match(err.message, p);
}

describe('builder: local detector', () => {
  after(cleanupTemp);

  it('plans examples/hello-node: no dependencies, so nothing to install, started with npm run start', async () => {
    const { provider, plan, appDir } = await detectPlan(path.join(root, 'examples/hello-node'), {});
    assert.equal(provider, 'node');
    assert.equal(appDir, path.join(root, 'examples/hello-node'));
    assert.deepEqual(execs(plan, 'install'), []);
    assert.deepEqual(execs(plan, 'build'), []);
    assert.equal(plan.deploy.startCommand, 'npm run start');
    assert.equal(plan.deploy.variables?.NODE_ENV, 'production');
    // The same format Railpack writes: it parses with the plan schema, unchanged.
    assert.deepEqual(parseBuildPlan(JSON.parse(JSON.stringify(plan))), plan);
    assert.deepEqual(
      plan.steps?.map((s) => s.name),
      ['install', 'build'],
    );
    assert.deepEqual(plan.steps?.[1].inputs, [{ step: 'install' }, { local: true, include: ['.'] }]);
  });

  it('picks the package manager from the lockfile and runs the build script', async () => {
    const pkg = (extra = {}) => JSON.stringify({ dependencies: { left: '1' }, scripts: { build: 'tsc', start: 'node dist/a.js' }, ...extra });
    const cases: [Record<string, string>, string, string][] = [
      [{ 'package-lock.json': '{}' }, 'npm ci', 'npm run'],
      [{}, 'npm install', 'npm run'],
      [{ 'pnpm-lock.yaml': 'lockfileVersion: 9' }, 'pnpm install --frozen-lockfile --prefer-offline', 'pnpm run'],
      [{ 'yarn.lock': '' }, 'yarn install --frozen-lockfile', 'yarn run'],
      [{ 'bun.lockb': '' }, 'bun install --frozen-lockfile', 'bun run'],
    ];
    for (const [lock, install, run] of cases) {
      const { plan } = await detectPlan(repo({ 'package.json': pkg(), ...lock }), {});
      assert.deepEqual(execs(plan, 'install'), [install], JSON.stringify(lock));
      assert.deepEqual(execs(plan, 'build'), [`${run} build`]);
      assert.equal(plan.deploy.startCommand, `${run} start`);
    }
    const { plan } = await detectPlan(repo({ 'package.json': pkg(), 'package-lock.json': '{}' }), {});
    const install = plan.steps?.find((s) => s.name === 'install');
    assert.deepEqual(install?.caches, ['npm-install']);
    assert.deepEqual(plan.caches?.['npm-install'], { directory: '/root/.npm', type: 'shared' });
  });

  it('starts a Node app from main, then index.js, when there is no start script', async () => {
    assert.equal((await detectPlan(repo({ 'package.json': '{"main":"src/server.js"}' }), {})).plan.deploy.startCommand, 'node src/server.js');
    assert.equal((await detectPlan(repo({ 'package.json': '{}', 'index.js': '' }), {})).plan.deploy.startCommand, 'node index.js');
    await rejectsAnalyze(detectPlan(repo({ 'package.json': '{}' }), {}), /Node app/, /no start command/, /"start" script/, /Procfile/);
    await rejectsAnalyze(detectPlan(repo({ 'package.json': '{ nope' }), {}), /package\.json is not valid JSON/);
  });

  it('plans a Go module like Railpack: go build -o out, started with ./out', async () => {
    const { provider, plan } = await detectPlan(path.join(root, 'examples/hello-go'), {});
    assert.equal(provider, 'golang');
    assert.deepEqual(execs(plan, 'build'), ['go build -ldflags="-w -s" -o out']);
    assert.deepEqual(execs(plan, 'install'), []); // no go.sum: nothing to download
    assert.equal(plan.deploy.startCommand, './out');
    assert.equal(plan.caches?.['go-build']?.directory, '/root/.cache/go-build');

    const cmdDir = await detectPlan(repo({ 'go.mod': 'module x', 'go.sum': '', 'cmd/api/main.go': 'package main' }), {});
    assert.deepEqual(execs(cmdDir.plan, 'build'), ['go build -ldflags="-w -s" -o out ./cmd/api']);
    assert.deepEqual(execs(cmdDir.plan, 'install'), ['go mod download']);
    const noMain = repo({ 'go.mod': 'module x', 'internal/x/x.go': 'package x' });
    await rejectsAnalyze(detectPlan(noMain, {}), /no main package/, /build command/);
    const withBuild = await detectPlan(noMain, { buildCommand: 'go build -o out ./internal/x' });
    assert.deepEqual(execs(withBuild.plan, 'build'), [`sh -c 'go build -o out ./internal/x'`]);
  });

  it('plans Python: a venv, pip install, and python <main file> or the Procfile', async () => {
    const req = await detectPlan(repo({ 'requirements.txt': 'flask', 'app.py': '' }), {});
    assert.equal(req.provider, 'python');
    assert.deepEqual(execs(req.plan, 'install'), ['python3 -m venv .venv', 'pip install -r requirements.txt']);
    assert.equal(req.plan.deploy.startCommand, 'python app.py');
    assert.deepEqual(req.plan.deploy.paths, ['/app/.venv/bin']);

    const pyproject = await detectPlan(repo({ 'pyproject.toml': '[project]', 'main.py': '' }), {});
    assert.deepEqual(execs(pyproject.plan, 'install'), ['python3 -m venv .venv', 'pip install .']);
    assert.equal(pyproject.plan.deploy.startCommand, 'python main.py');

    const bare = await detectPlan(repo({ 'server.py': '' }), {});
    assert.deepEqual(execs(bare.plan, 'install'), ['python3 -m venv --without-pip .venv']);

    const procfile = await detectPlan(repo({ 'requirements.txt': '', Procfile: 'worker: python w.py\nweb: gunicorn app:app\n' }), {});
    assert.equal(procfile.plan.deploy.startCommand, 'gunicorn app:app');
    await rejectsAnalyze(detectPlan(repo({ 'requirements.txt': '' }), {}), /Python app/, /main\.py, app\.py/);
  });

  it('serves a static site with the shipped static server: public/ first, else index.html', async () => {
    const pub = await detectPlan(repo({ 'public/index.html': '<h1>x</h1>' }), {});
    assert.equal(pub.provider, 'staticfile');
    assert.equal(pub.plan.deploy.startCommand, 'node .rhone/static-server.mjs public');
    const build = pub.plan.steps?.find((s) => s.name === 'build');
    assert.deepEqual(build?.commands?.[0], { path: '.rhone/static-server.mjs', name: 'static-server.mjs', customName: 'write the static file server' });
    assert.match(build?.assets?.['static-server.mjs'] ?? '', /\/health/);

    const index = await detectPlan(repo({ 'index.html': '' }), {});
    assert.equal(index.plan.deploy.startCommand, 'node .rhone/static-server.mjs .');
    const staticfile = await detectPlan(repo({ 'index.html': '', Staticfile: 'root: dist\n', 'dist/index.html': '' }), {});
    assert.equal(staticfile.plan.deploy.startCommand, 'node .rhone/static-server.mjs dist');
  });

  it("follows Railpack's provider order: Go before Node, Node before a static site", async () => {
    assert.equal((await detectPlan(repo({ 'go.mod': 'module x', 'main.go': '', 'package.json': '{}' }), {})).provider, 'golang');
    assert.equal((await detectPlan(repo({ 'package.json': '{"scripts":{"start":"x"}}', 'public/a.css': '' }), {})).provider, 'node');
    assert.equal((await detectPlan(repo({ 'main.py': '', 'package.json': '{}' }), {})).provider, 'python');
  });

  it('runs start.sh with its shebang interpreter, and a bare Procfile app', async () => {
    const shell = await detectPlan(repo({ 'start.sh': '#!/usr/bin/env bash\necho hi\n' }), {});
    assert.deepEqual([shell.provider, shell.plan.deploy.startCommand], ['shell', 'bash start.sh']);
    const proc = await detectPlan(repo({ Procfile: 'web: ./serve --port $PORT\n', serve: '' }), {});
    assert.deepEqual([proc.provider, proc.plan.deploy.startCommand], ['procfile', './serve --port $PORT']);
    assert.doesNotThrow(() => buildPlanSchema.parse(proc.plan));
  });

  it("lets the app's settings win: root directory, build command, start command over the Procfile", async () => {
    const mono = repo({
      'README.md': '',
      'apps/web/package.json': JSON.stringify({ scripts: { build: 'vite build', start: 'node s.js' } }),
      'apps/web/Procfile': 'web: node procfile.js',
    });
    const detected = await detectPlan(mono, { rootDirectory: 'apps/web' });
    assert.equal(detected.appDir, path.join(mono, 'apps/web'));
    assert.equal(detected.plan.deploy.startCommand, 'node procfile.js'); // the Procfile beats the start script
    const overridden = await detectPlan(mono, { rootDirectory: '/apps/web/', buildCommand: "echo 'it''s' && make", startCommand: 'node custom.js' });
    assert.equal(overridden.plan.deploy.startCommand, 'node custom.js');
    const build = overridden.plan.steps?.find((s) => s.name === 'build')?.commands;
    assert.deepEqual(build, [{ cmd: `sh -c 'echo '\\''it'\\'''\\''s'\\'' && make'`, customName: "echo 'it''s' && make" }]);

    await rejectsAnalyze(detectPlan(mono, { rootDirectory: 'apps/api' }), /root directory "apps\/api" does not exist/);
    await rejectsAnalyze(detectPlan(mono, { rootDirectory: '../..' }), /must be a path inside the repository/);
    symlinkSync('/etc', path.join(mono, 'escape'));
    await rejectsAnalyze(detectPlan(mono, { rootDirectory: 'escape' }), /leads outside the repository/);
  });

  it('says what it looked for when it recognises nothing, and accepts a start command instead', async () => {
    const dir = repo({ 'notes.txt': '', 'docs/': '' });
    await rejectsAnalyze(
      detectPlan(dir, {}),
      /could not tell how to build this app/,
      /package\.json \(Node\), go\.mod/,
      /requirements\.txt/,
      /index\.html or a public\/ directory/,
      /Procfile/,
      /it holds docs\/, notes\.txt/,
      /set a start command/,
    );
    const custom = await detectPlan(dir, { startCommand: './run.sh', buildCommand: 'make' });
    assert.equal(custom.provider, 'custom');
    assert.equal(custom.plan.deploy.startCommand, './run.sh');
    assert.deepEqual(execs(custom.plan, 'build'), [`sh -c 'make'`]);
  });

  it('recognises languages it cannot build locally, and says what to do', async () => {
    await rejectsAnalyze(
      detectPlan(repo({ 'Cargo.toml': '', 'package.json': '{}' }), {}),
      /Rust app \(Cargo\.toml\)/,
      /Set a build command and a start command/,
      /production/,
    );
    const custom = await detectPlan(repo({ Gemfile: '' }), { startCommand: 'ruby app.rb' });
    assert.deepEqual([custom.provider, custom.plan.deploy.startCommand], ['custom', 'ruby app.rb']);
  });

  it('parses a real Railpack plan (the go-mod snapshot) with the plan schema', () => {
    const snapshot = {
      caches: { 'go-build': { directory: '/root/.cache/go-build', type: 'shared' } },
      deploy: {
        base: { image: 'ghcr.io/railwayapp/railpack-runtime:mise-2026.8.6' },
        inputs: [{ step: 'build', include: ['.'] }],
        startCommand: './out',
        variables: { RAILPACK_VERSION: 'dev' },
      },
      steps: [
        {
          name: 'packages:mise',
          inputs: [{ image: 'ghcr.io/railwayapp/railpack-builder:mise-2026.8.6' }],
          assets: { 'generated-mise-toml': '[generated-mise-toml]' },
          commands: [
            { path: '/mise/shims' },
            { src: 'mise.toml', dest: 'mise.toml' },
            { path: '/etc/mise/config.toml', name: 'generated-mise-toml', customName: 'create mise config' },
            { cmd: 'mise install', customName: 'install mise packages: go' },
          ],
          variables: { MISE_DATA_DIR: '/mise' },
        },
        {
          name: 'build',
          inputs: [{ step: 'packages:mise' }, { local: true, include: ['.'] }],
          caches: ['go-build'],
          secrets: ['*'],
          commands: [{ cmd: 'go build -o out' }],
        },
      ],
      $schema: 'https://schema.railpack.com',
    };
    assert.deepEqual(parseBuildPlan(snapshot), snapshot);
    assert.throws(() => parseBuildPlan({ steps: [] }), /invalid Railpack build plan: deploy/);
    assert.throws(() => parseBuildPlan({ deploy: { base: {} }, caches: { x: { directory: '/x', type: 'weird' } } }), /caches\.x\.type/);
  });
});
