// Production's build: the rawjson decoder against recorded BuildKit progress (client.SolveStatus
// lines, test/fixtures/buildkit/), and buildWithBuildkit against a fake `buildctl` on PATH that
// replays it, recording its argv, environment and the credentials it was handed.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BuildError, CanceledError } from '../backend/builder/errors.ts';
import {
  type BuildLogLine,
  RawJsonDecoder,
  buildWithBuildkit,
  decodeRawJson,
  dockerConfigJson,
  registryHost,
  secretsHash,
} from '../backend/builder/buildkit.ts';
import { cleanupTemp, repo, root, tempDir } from './builder-support.ts';

const fixture = (name: string) => path.join(root, 'test/fixtures/buildkit', name);

function decodeFile(name: string): { lines: BuildLogLine[]; decoder: RawJsonDecoder } {
  const decoder = new RawJsonDecoder();
  const lines = readFileSync(fixture(name), 'utf8')
    .split('\n')
    .flatMap((l) => decoder.decode(l));
  return { lines: [...lines, ...decoder.flush()], decoder };
}

describe('builder: BuildKit rawjson progress', () => {
  it('turns a recorded Railpack build into readable lines, in order', () => {
    const { lines } = decodeFile('railpack-node-success.rawjson');
    const text = lines.map((l) => `${l.stream} ${l.line}`);
    const expectInOrder = [
      'system #1 resolve image config for ghcr.io/railwayapp/railpack-frontend:v0.37.0',
      'system #1 DONE 0.8s',
      'system #2 CACHED',
      'system #3 transferring dockerfile: 2.7kB 0.1s done',
      'system #3 DONE 0.1s',
      'system #6 install mise packages: node',
      'stderr [install mise packages: node] mise node@22.12.0 ✓ installed',
      'system #7 npm ci',
      // one line, although BuildKit sent it in two chunks
      'stdout [npm ci] added 52 packages, and audited 53 packages in 3s',
      'stderr [npm ci] npm warn deprecated inflight@1.0.6: This module is not supported',
      'system #7 DONE 2.8s',
      'stdout [npm run build] ✓ 34 modules transformed.',
      // no newline before the vertex completed: flushed when it did
      'stdout [npm run build] dist/index.html  0.46 kB',
      'system #8 DONE 1.8s',
      'stderr #9 WARNING: RAILPACK_VERSION is set in the image environment',
      'stderr #9   Variables in deploy.variables end up in the image.',
      'system #10 sha256:efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef 23.0MB / 23.0MB 2.6s done',
      'system #10 pushing layers 2.7s done',
      'system #10 DONE 4.9s',
    ];
    let at = -1;
    for (const want of expectInOrder) {
      const found = text.indexOf(want, at + 1);
      assert.ok(found > at, `missing or out of order: ${want}\n--- got:\n${text.join('\n')}`);
      at = found;
    }
    assert.equal(text.filter((l) => l === 'system #7 npm ci').length, 1, 'a vertex is announced once, though sent many times');
    assert.ok(!text.some((l) => l.includes('ERROR')));
    assert.ok(!text.some((l) => /ef 1\.0MB \/ 23\.0MB/.test(l)), 'unfinished progress is not logged');
  });

  it("reports the failing vertex and keeps buildctl's own plain-text error", () => {
    const { lines, decoder } = decodeFile('railpack-node-failure.rawjson');
    const text = lines.map((l) => `${l.stream} ${l.line}`);
    assert.ok(text.includes("stderr [npm run build] src/main.ts:3:7 - error TS2322: Type 'string' is not assignable to type 'number'."));
    assert.ok(text.includes('stderr #8 ERROR: process "/bin/bash -ol pipefail -c npm run build" did not complete successfully: exit code: 2'));
    assert.ok(text.at(-1)?.startsWith('stderr error: failed to solve:'));
    assert.deepEqual(decoder.lastError, {
      vertex: 'npm run build',
      error: 'process "/bin/bash -ol pipefail -c npm run build" did not complete successfully: exit code: 2',
    });
  });

  it('decodes a single line on its own, and survives junk', () => {
    const line = JSON.stringify({
      logs: [{ vertex: 'sha256:aa', stream: 2, data: Buffer.from('boom\n').toString('base64'), timestamp: '2026-01-16T10:00:00Z' }],
    });
    assert.deepEqual(decodeRawJson(line), [{ stream: 'stderr', line: '[sha256:aa] boom' }]);
    assert.deepEqual(decodeRawJson('not json'), [{ stream: 'stderr', line: 'not json' }]);
    assert.deepEqual(decodeRawJson('null'), [{ stream: 'stderr', line: 'null' }]);
    assert.deepEqual(decodeRawJson('  '), []);
  });
});

describe('builder: buildWithBuildkit', function () {
  this.timeout(20_000);
  let bin: string;
  let savedPath: string | undefined;
  const PASSWORD = 'fo1_fly-token-SECRET-xyz';
  const read = (name: string) => readFileSync(path.join(bin, name), 'utf8');

  before(() => {
    bin = tempDir('rhone-fake-buildctl-');
    writeFileSync(
      path.join(bin, 'buildctl'),
      `#!/bin/sh
D='${bin}'
printf '%s\\n' "$@" > "$D/argv"
env > "$D/env"
cp "$DOCKER_CONFIG/config.json" "$D/config.json"
stat -c '%a' "$DOCKER_CONFIG/config.json" > "$D/config.mode"
: > "$D/secret-values"
while [ $# -gt 0 ]; do
  case "$1" in
    --metadata-file) meta="$2"; shift ;;
    --secret) { printf '%s ' "$2"; cat "\${2##*src=}"; echo; stat -c '%a' "\${2##*src=}"; } >> "$D/secret-values"; shift ;;
    --tlsdir) cat "$2/ca.pem" "$2/cert.pem" "$2/key.pem" > "$D/tls"; stat -c '%a' "$2/key.pem" >> "$D/tls"; shift ;;
  esac
  shift
done
case "$(cat "$D/mode")" in
  ok) cat '${fixture('railpack-node-success.rawjson')}' >&2
      printf '{"containerimage.digest":"sha256:%s","image.name":"registry.fly.io/rhone-shop:dep-42"}' 1212121212121212121212121212121212121212121212121212121212121212 > "$meta" ;;
  fail) cat '${fixture('railpack-node-failure.rawjson')}' >&2; exit 1 ;;
  slow) head -n 8 '${fixture('railpack-node-success.rawjson')}' >&2; sleep 30 ;;
  file) cat "$D/progress.rawjson" >&2; exit 1 ;;
esac
`,
    );
    chmodSync(path.join(bin, 'buildctl'), 0o755);
    savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${savedPath}`;
  });
  after(() => {
    process.env.PATH = savedPath;
    cleanupTemp();
  });

  function options(mode: string, planSecrets: string[] = []) {
    writeFileSync(path.join(bin, 'mode'), mode);
    const planDir = tempDir('rhone-plan-');
    const planPath = path.join(planDir, 'railpack-plan.json');
    writeFileSync(planPath, JSON.stringify({ deploy: { base: { image: 'x' }, startCommand: 'npm run start' }, secrets: planSecrets }));
    const lines: BuildLogLine[] = [];
    return {
      lines,
      planDir,
      opts: {
        contextDir: repo({ 'package.json': '{}' }),
        planPath,
        image: 'registry.fly.io/rhone-shop:dep-42',
        builderAddr: 'tcp://rhone-builder.internal:1234',
        registryAuth: { username: 'x', password: PASSWORD },
        railpackVersion: '0.37.0',
        cacheKey: 'app_42',
        log: (stream: BuildLogLine['stream'], line: string) => lines.push({ stream, line }),
      },
    };
  }

  it('runs buildctl with the Railpack frontend and pushes, credentials never in argv', async () => {
    const { opts, lines, planDir } = options('ok', ['API_KEY', 'RAILPACK_BUILD_CMD']);
    const result = await buildWithBuildkit({
      ...opts,
      secrets: { API_KEY: 'app-secret-777', OTHER: 'not in the plan' },
      tls: { caCert: 'CA-PEM\n', cert: 'CERT-PEM\n', key: 'KEY-PEM-SECRET\n', serverName: 'rhone-builder.internal' },
    });
    assert.equal(result.image, 'registry.fly.io/rhone-shop:dep-42');
    assert.equal(result.digest, `sha256:${'12'.repeat(32)}`);

    const argv = read('argv').trimEnd().split('\n');
    const pairs = (flag: string) => argv.flatMap((a, i) => (a === flag ? [argv[i + 1]] : []));
    assert.deepEqual(argv.slice(0, 2), ['--addr', 'tcp://rhone-builder.internal:1234']);
    assert.ok(argv.includes('build'));
    assert.deepEqual(pairs('--frontend'), ['gateway.v0']);
    assert.deepEqual(pairs('--local'), [`context=${opts.contextDir}`, `dockerfile=${planDir}`]);
    assert.deepEqual(pairs('--output'), ['type=image,name=registry.fly.io/rhone-shop:dep-42,push=true']);
    assert.deepEqual(pairs('--progress'), ['rawjson']);
    const opt = pairs('--opt');
    for (const want of [
      'source=ghcr.io/railwayapp/railpack-frontend:v0.37.0',
      'filename=railpack-plan.json',
      'platform=linux/amd64',
      'build-arg:cache-key=app_42',
    ]) {
      assert.ok(opt.includes(want), `--opt ${want}`);
    }
    assert.ok(opt.some((o) => /^build-arg:secrets-hash=[0-9a-f]{64}$/.test(o)));
    assert.deepEqual(pairs('--tlsservername'), ['rhone-builder.internal']);

    const everything = argv.join(' ');
    for (const secret of [PASSWORD, Buffer.from(`x:${PASSWORD}`).toString('base64'), 'app-secret-777', 'KEY-PEM-SECRET']) {
      assert.ok(!everything.includes(secret), `argv holds a secret: ${secret}`);
      assert.ok(!read('env').includes(secret), `the environment holds a secret: ${secret}`);
    }
    // The login reached buildctl through DOCKER_CONFIG, private to the build.
    assert.deepEqual(JSON.parse(read('config.json')), { auths: { 'registry.fly.io': { auth: Buffer.from(`x:${PASSWORD}`).toString('base64') } } });
    assert.equal(read('config.mode').trim(), '600');
    // Every plan secret is provided, from a private file; a missing value is provided empty.
    const secrets = read('secret-values').trimEnd().split('\n');
    assert.match(secrets[0], /^id=API_KEY,src=\S+ app-secret-777$/);
    assert.equal(secrets[1], '600');
    assert.match(secrets[2], /^id=RAILPACK_BUILD_CMD,src=\S+ $/);
    assert.ok(!read('secret-values').includes('not in the plan'));
    assert.deepEqual(read('tls').trimEnd().split('\n'), ['CA-PEM', 'CERT-PEM', 'KEY-PEM-SECRET', '600']);
    const dockerConfig = read('env').match(/^DOCKER_CONFIG=(.*)$/m)?.[1] ?? '';
    assert.ok(dockerConfig && !existsSync(dockerConfig), 'the credentials are removed after the build');

    assert.ok(lines.some((l) => l.stream === 'stdout' && l.line === '[npm ci] added 52 packages, and audited 53 packages in 3s'));
    assert.ok(lines.some((l) => l.stream === 'system' && l.line === '#10 DONE 4.9s'));
  });

  it('fails with a BuildError naming the failed vertex and its output', async () => {
    const { opts, lines } = options('fail');
    const err = await buildWithBuildkit(opts).catch((e: unknown) => e);
    assert.ok(err instanceof BuildError, String(err));
    assert.equal(err.step, 'npm run build');
    assert.equal(err.exitCode, 1);
    assert.match(err.message, /^the image build failed: "npm run build" failed: process .* exit code: 2$/);
    assert.ok(err.lastLines.some((l) => l.includes('error TS2322')));
    assert.ok(lines.some((l) => l.stream === 'stderr' && l.line.includes('error TS2322')));
  });

  it("parses a 600 KB rawjson line whole: the reason is the failed step's error, redacted", async () => {
    // One SolveStatus carrying the failing vertex (its error first, as Go encodes the struct in
    // field order) and ~450 KB of the step's output: BuildKit splits a status only past 1 MiB of
    // log data (moby/buildkit client/status.go Marshal), so lines like this are ordinary.
    const { opts, lines } = options('file');
    const secret = 'hunter2-db-password';
    const vertex = `sha256:${'ab'.repeat(32)}`;
    const output = `${'compiling module …\n'.repeat(22_000)}using ${secret}\n`;
    const status = {
      vertexes: [
        {
          digest: vertex,
          name: 'npm run build',
          started: '2026-01-16T10:00:00Z',
          completed: '2026-01-16T10:00:09Z',
          error: `process "npm run build" did not complete successfully: exit code: 1: cannot reach postgres://app:${secret}@db`,
        },
      ],
      logs: [{ vertex, stream: 2, data: Buffer.from(output).toString('base64'), timestamp: '2026-01-16T10:00:08Z' }],
    };
    const line = JSON.stringify(status);
    assert.ok(line.length > 600_000, `the line is ${line.length} characters`);
    writeFileSync(path.join(bin, 'progress.rawjson'), `${line}\nerror: failed to solve: exit code: 1\n`);
    const err = await buildWithBuildkit({ ...opts, secrets: { DB_PASSWORD: secret } }).catch((e: unknown) => e);
    assert.ok(err instanceof BuildError, String(err));
    assert.equal(err.step, 'npm run build');
    assert.match(
      err.message,
      /^the image build failed: "npm run build" failed: process "npm run build" did not complete successfully: exit code: 1: cannot reach postgres:\/\/app:\[redacted\]@db$/,
    );
    assert.ok(
      lines.some((l) => l.line === '[npm run build] using [redacted]'),
      "the step's output was decoded, not logged as fragments of JSON",
    );
    assert.ok(!lines.some((l) => l.line.includes('"vertexes"') || l.line.includes(secret)));
  });

  it('streams progress while buildctl runs, and a cancel kills it within a second', async () => {
    const { opts, lines } = options('slow');
    const controller = new AbortController();
    let abortedAt = 0;
    const log = (stream: BuildLogLine['stream'], line: string) => {
      lines.push({ stream, line });
      if (line === '#5 load local context') {
        abortedAt = performance.now();
        controller.abort();
      }
    };
    const err = await buildWithBuildkit({ ...opts, log, signal: controller.signal }).catch((e: unknown) => e);
    assert.ok(err instanceof CanceledError, String(err));
    assert.ok(abortedAt > 0, 'progress arrived before buildctl ended');
    assert.ok(performance.now() - abortedAt < 1000);
  });

  it('writes Docker-style credentials and hashes secrets deterministically', () => {
    assert.equal(registryHost('registry.fly.io/app:tag'), 'registry.fly.io');
    assert.equal(registryHost('localhost:5000/app'), 'localhost:5000');
    assert.equal(registryHost('library/node:22'), 'https://index.docker.io/v1/');
    assert.deepEqual(JSON.parse(dockerConfigJson('registry.fly.io/a:b', { username: 'x', password: 'p' })), { auths: { 'registry.fly.io': { auth: 'eDpw' } } });
    assert.equal(
      secretsHash([
        ['B', '2'],
        ['A', '1'],
      ]),
      secretsHash([
        ['A', '1'],
        ['B', '2'],
      ]),
    );
    assert.notEqual(secretsHash([['A', '1']]), secretsHash([['A', '2']]));
  });
});
