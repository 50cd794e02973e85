// Production's analyzer against a fake `railpack` on PATH (a real one cannot be installed here):
// the flags it is given, env var values kept out of argv, the plan and info it writes, and how
// each exit code becomes an error the deploy pipeline can act on.
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { AnalyzeError, AnalyzeRetryableError, railpackFrontendImage, railpackPrepare, resolvedVersions } from '../backend/builder/railpack.ts';
import { CanceledError } from '../backend/builder/errors.ts';
import { cleanupTemp, repo, tempDir } from './builder-support.ts';

const goPlan = {
  $schema: 'https://schema.railpack.com',
  caches: { 'go-build': { directory: '/root/.cache/go-build', type: 'shared' } },
  deploy: {
    base: { image: 'ghcr.io/railwayapp/railpack-runtime:mise-2026.8.6' },
    inputs: [{ step: 'build', include: ['.'] }],
    startCommand: './out',
    variables: { RAILPACK_VERSION: '0.37.0' },
  },
  steps: [{ name: 'build', inputs: [{ local: true, include: ['.'] }], commands: [{ cmd: 'go build -o out' }], secrets: ['*'] }],
  secrets: ['API_KEY'],
};
const goInfo = {
  railpackVersion: '0.37.0',
  metadata: { providers: 'golang', goMod: 'true' },
  detectedProviders: ['golang'],
  logs: [{ Level: 'info', Msg: 'Detected Golang', DocsPath: '' }],
  success: true,
};

describe('builder: railpack prepare', function () {
  this.timeout(20_000);
  let bin: string;
  let savedPath: string | undefined;
  const setMode = (mode: string, plan: unknown = goPlan, info: unknown = goInfo) => {
    writeFileSync(path.join(bin, 'mode'), mode);
    writeFileSync(path.join(bin, 'plan.json'), JSON.stringify(plan));
    writeFileSync(path.join(bin, 'info.json'), JSON.stringify(info));
  };
  const argv = () => readFileSync(path.join(bin, 'argv'), 'utf8').trimEnd().split('\n');
  const childEnv = () => readFileSync(path.join(bin, 'env'), 'utf8');

  before(() => {
    bin = tempDir('rhone-fake-railpack-');
    writeFileSync(
      path.join(bin, 'railpack'),
      `#!/bin/sh
D='${bin}'
printf '%s\\n' "$@" > "$D/argv"
env > "$D/env"
while [ $# -gt 0 ]; do
  case "$1" in
    --plan-out) plan="$2"; shift ;;
    --info-out) info="$2"; shift ;;
  esac
  shift
done
case "$(cat "$D/mode")" in
  ok) echo "Detected Golang"; echo "Using go mod"; cp "$D/plan.json" "$plan"; cp "$D/info.json" "$info"; exit 0 ;;
  cannot) echo "✖ No start command was found" >&2; cp "$D/info.json" "$info"; exit 1 ;;
  stderr) echo "Error: reading railpack.json: unexpected end of JSON input" >&2; exit 1 ;;
  transient) echo "failed to download mise: connection reset by peer" >&2; exit 75 ;;
  crash) echo "panic: runtime error: invalid memory address" >&2; exit 2 ;;
  hang) echo started; sleep 30 ;;
esac
`,
    );
    chmodSync(path.join(bin, 'railpack'), 0o755);
    savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${savedPath}`;
  });
  after(() => {
    process.env.PATH = savedPath;
    cleanupTemp();
  });

  it('runs prepare with plan and info files, and env var names only: values stay out of argv', async () => {
    setMode('ok');
    const source = repo({ 'apps/api/go.mod': 'module x', 'apps/api/main.go': 'package main' });
    process.env.RHONE_TEST_CONTROL_PLANE_SECRET = 'must-not-leak';
    const lines: string[] = [];
    try {
      const { plan, info, appDir } = await railpackPrepare(
        source,
        { rootDirectory: 'apps/api', buildCommand: 'make build', startCommand: null },
        { env: { API_KEY: 'secret-value-123', 'BAD NAME': 'x' }, log: (_s, line) => lines.push(line) },
      );
      assert.equal(appDir, path.join(source, 'apps/api'));
      assert.deepEqual(plan, goPlan);
      assert.deepEqual(info, goInfo);
      assert.deepEqual(lines, ['Detected Golang', 'Using go mod']);
    } finally {
      delete process.env.RHONE_TEST_CONTROL_PLANE_SECRET;
    }
    const args = argv();
    assert.deepEqual(args.slice(0, 2), ['prepare', path.join(source, 'apps/api')]);
    assert.match(args[args.indexOf('--plan-out') + 1], /railpack-plan\.json$/);
    assert.match(args[args.indexOf('--info-out') + 1], /railpack-info\.json$/);
    assert.ok(args.includes('--error-missing-start'));
    assert.deepEqual(args.slice(args.indexOf('--env'), args.indexOf('--env') + 2), ['--env', 'API_KEY']);
    assert.deepEqual(args.slice(args.indexOf('--build-cmd'), args.indexOf('--build-cmd') + 2), ['--build-cmd', 'make build']);
    assert.ok(!args.includes('--start-cmd'));
    assert.ok(!args.join(' ').includes('secret-value-123'), 'no value in argv');
    assert.match(childEnv(), /^API_KEY=secret-value-123$/m, 'railpack reads the value of a bare --env NAME from its environment');
    assert.doesNotMatch(childEnv(), /must-not-leak|RHONE_SESSION_SECRET|DATABASE_URL/);
  });

  it('pins the next analyze to the versions the last one resolved, with --previous name@version', async () => {
    setMode('ok', goPlan, {
      ...goInfo,
      resolvedPackages: {
        go: { name: 'go', requestedVersion: '1.22', resolvedVersion: '1.22.12', source: 'go.mod' },
        node: { name: 'node', requestedVersion: '22', resolvedVersion: '22.12.0', source: 'default' },
        'bad name': { name: 'bad name', resolvedVersion: '1' },
        caddy: { name: 'caddy', requestedVersion: 'latest' },
      },
    });
    const first = await railpackPrepare(repo({ 'go.mod': 'module x' }), {});
    assert.ok(!argv().includes('--previous'), 'nothing to pin on a first analyze');
    // Only what Railpack resolved, and only what it can read back (ParsePackageWithVersion splits on "@").
    assert.deepEqual(resolvedVersions(first.info), { go: '1.22.12', node: '22.12.0' });
    await railpackPrepare(repo({ 'go.mod': 'module x' }), {}, { previous: resolvedVersions(first.info) });
    const args = argv();
    const pairs = args.flatMap((a, i) => (a === '--previous' ? [args[i + 1]] : []));
    assert.deepEqual(pairs, ['go@1.22.12', 'node@22.12.0']);
  });

  it("lets the app's start command win over railpack.json and over RAILPACK_START_CMD in its env vars", async () => {
    setMode('ok', { ...goPlan, deploy: { ...goPlan.deploy, startCommand: 'from railpack.json' } });
    const { plan } = await railpackPrepare(
      repo({ 'go.mod': '' }),
      { startCommand: './out --serve' },
      { env: { RAILPACK_START_CMD: 'from env', RAILPACK_BUILD_CMD: 'kept' } },
    );
    assert.equal(plan.deploy.startCommand, './out --serve');
    const args = argv();
    assert.deepEqual(args.slice(args.indexOf('--start-cmd'), args.indexOf('--start-cmd') + 2), ['--start-cmd', './out --serve']);
    assert.ok(!args.includes('RAILPACK_START_CMD'));
    assert.ok(args.includes('RAILPACK_BUILD_CMD'), 'without a build command setting, the env var still counts');
  });

  it("exit 1: an AnalyzeError carrying Railpack's own reason from the info file", async () => {
    setMode('cannot', goPlan, {
      success: false,
      logs: [
        { Level: 'info', Msg: 'Detected Node', DocsPath: '' },
        { Level: 'error', Msg: 'No start command was found', DocsPath: '/config/procfile' },
      ],
    });
    const err = await railpackPrepare(repo({ 'package.json': '{}' }), {}).catch((e: unknown) => e);
    assert.ok(err instanceof AnalyzeError, String(err));
    assert.equal(err.message, 'Railpack cannot build this app: No start command was found (see https://railpack.com/config/procfile)');
  });

  it('exit 1 with no info file: the reason is what railpack printed on stderr', async () => {
    setMode('stderr');
    const err = await railpackPrepare(repo({}), {}).catch((e: unknown) => e);
    assert.ok(err instanceof AnalyzeError);
    assert.match(err.message, /reading railpack\.json: unexpected end of JSON input/);
  });

  it('exit 75 is retryable; any other failure is a plain Error', async () => {
    setMode('transient');
    const retry = await railpackPrepare(repo({}), {}).catch((e: unknown) => e);
    assert.ok(retry instanceof AnalyzeRetryableError, String(retry));
    assert.match(retry.message, /connection reset by peer/);
    setMode('crash');
    const crash = await railpackPrepare(repo({}), {}).catch((e: unknown) => e);
    assert.ok(crash instanceof Error && !(crash instanceof AnalyzeError) && !(crash instanceof AnalyzeRetryableError));
    assert.match(crash.message, /railpack prepare exited with code 2: panic: runtime error/);
    const missing = await railpackPrepare(repo({}), {}, { railpackBin: path.join(bin, 'not-railpack') }).catch((e: Error) => e);
    assert.match(String(missing), /was not found: install it in the worker's image/);
  });

  it('is killed within a second by its AbortSignal', async () => {
    setMode('hang');
    const controller = new AbortController();
    let abortedAt = 0;
    const log = (_s: string, line: string) => {
      if (line === 'started') {
        abortedAt = performance.now();
        controller.abort();
      }
    };
    const err = await railpackPrepare(repo({}), {}, { signal: controller.signal, log }).catch((e: unknown) => e);
    assert.ok(err instanceof CanceledError, String(err));
    assert.ok(performance.now() - abortedAt < 1000);
  });

  it('keeps the files in outDir when asked, and names the matching frontend image', async () => {
    setMode('ok');
    const out = tempDir('rhone-plan-');
    await railpackPrepare(repo({ 'go.mod': '' }), {}, { outDir: out });
    assert.deepEqual(JSON.parse(readFileSync(path.join(out, 'railpack-plan.json'), 'utf8')), goPlan);
    assert.equal(railpackFrontendImage('0.37.0'), 'ghcr.io/railwayapp/railpack-frontend:v0.37.0');
    assert.equal(railpackFrontendImage('v0.37.0'), 'ghcr.io/railwayapp/railpack-frontend:v0.37.0');
  });
});
