// Local mode's native build: a real build of examples/hello-node that is then run the way the
// local runtime runs images, static and Python apps, and the failure modes a user meets: a failing
// command, a step that hangs, a cancel. Output must stream while a step runs.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { detectPlan } from '../backend/builder/detect.ts';
import { BuildError, CanceledError, buildLocal, type LogStream } from '../backend/builder/local-build.ts';
import type { BuildPlan } from '../backend/builder/plan.ts';
import { readImage } from '../local/images.ts';
import { freePort, hostEnv, killMachine } from '../local/processes.ts';
import { cleanupTemp, repo, root, tempDir } from './builder-support.ts';
import { imageCommand } from '../backend/builder/start-command.ts';

interface Logged {
  stream: LogStream;
  line: string;
  at: number;
}

function recorder() {
  const lines: Logged[] = [];
  return {
    lines,
    log: (stream: LogStream, line: string) => lines.push({ stream, line, at: performance.now() }),
    text: () => lines.map((l) => l.line).join('\n'),
  };
}

/** A plan with one build step running `commands`, started with `start`. */
function planOf(commands: string[], start = 'true', extra: Partial<BuildPlan['steps'] extends (infer S)[] | undefined ? S : never> = {}): BuildPlan {
  return {
    steps: [{ name: 'build', inputs: [{ local: true, include: ['.'] }], commands: commands.map((cmd) => ({ cmd })), ...extra }],
    deploy: { base: { image: 'x' }, startCommand: start },
  };
}

/** Runs an image as the local runtime does (cwd = the image, PORT set) until GET path answers. */
async function runImage(dataDir: string, image: string, requestPath = '/health'): Promise<{ status: number; body: string }> {
  const { dir, manifest } = await readImage(dataDir, image);
  const port = await freePort();
  const child = spawn(manifest.cmd[0], manifest.cmd.slice(1), {
    cwd: dir,
    env: { ...hostEnv(), ...manifest.env, PORT: String(port) },
    detached: true,
    stdio: 'ignore',
  });
  try {
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}${requestPath}`);
        return { status: res.status, body: await res.text() };
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    // The whole session, as the local runtime does: the image's start wrapper runs the app in a
    // process group of its own, which a kill of the wrapper's group would leave running.
    killMachine(child.pid as number);
  }
}

/** Running (a zombie nobody has reaped yet counts as dead: it was killed, it just has no parent to wait on it). */
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
  return !/^\d+ \(.*\) Z/.test(stat);
};

describe('builder: local build', function () {
  this.timeout(30_000);
  let dataDir: string;
  beforeEach(() => {
    dataDir = tempDir('rhone-data-');
  });
  after(cleanupTemp);

  it('builds examples/hello-node into an image that runs and answers /health', async () => {
    const source = path.join(root, 'examples/hello-node');
    const { plan, appDir } = await detectPlan(source, {});
    const rec = recorder();
    const { image, durationMs } = await buildLocal({
      sourceDir: appDir,
      plan,
      dataDir,
      imageName: 'hello-node',
      tag: 'dep-1',
      stepTimeoutMs: 10_000,
      log: rec.log,
    });
    assert.equal(image, 'rhone-local/hello-node:dep-1');
    assert.ok(durationMs >= 0 && durationMs < 10_000);
    const dir = path.join(dataDir, 'images/hello-node/dep-1');
    assert.deepEqual(readdirSync(dir).sort(), ['package.json', 'rhone-image.json', 'server.js']);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'rhone-image.json'), 'utf8'));
    assert.deepEqual(manifest.cmd, imageCommand('npm run start'), 'the start command runs behind the signal-forwarding wrapper');
    assert.equal(manifest.env.NODE_ENV, 'production');
    assert.deepEqual(readdirSync(path.join(dataDir, 'builds')), [], 'the workspace is gone');
    assert.match(rec.text(), /stored image rhone-local\/hello-node:dep-1/);

    const res = await runImage(dataDir, image);
    assert.deepEqual(res, { status: 200, body: 'ok' });
  });

  it('runs the build script, streaming its output, and keeps what it wrote in the image', async () => {
    const source = repo({
      'package.json': JSON.stringify({ scripts: { build: 'node build.js', start: 'node dist/server.js' } }),
      'build.js': `const fs = require('fs'); fs.mkdirSync('dist'); console.log('bundling'); console.error('a warning');
fs.writeFileSync('dist/server.js', "require('http').createServer((q, s) => s.end(q.url === '/health' ? 'built ok' : 'x')).listen(process.env.PORT)");`,
      '.git/HEAD': 'ref: refs/heads/main',
    });
    const { plan, appDir } = await detectPlan(source, {});
    const rec = recorder();
    const { image } = await buildLocal({ sourceDir: appDir, plan, dataDir, imageName: 'web', tag: 'v1', stepTimeoutMs: 10_000, log: rec.log });
    assert.ok(rec.lines.some((l) => l.stream === 'system' && l.line === '==> [build] npm run build'));
    assert.ok(rec.lines.some((l) => l.stream === 'stdout' && l.line === 'bundling'));
    assert.ok(rec.lines.some((l) => l.stream === 'stderr' && l.line === 'a warning'));
    const { dir } = await readImage(dataDir, image);
    assert.ok(existsSync(path.join(dir, 'dist/server.js')));
    assert.ok(!existsSync(path.join(dir, '.git')), '.git is not part of an image');
    assert.ok(!existsSync(path.join(source, 'dist')), 'the source is never modified');
    assert.deepEqual(await runImage(dataDir, image), { status: 200, body: 'built ok' });
  });

  it('builds a static site served by the shipped static server, with /health', async () => {
    const source = repo({ 'public/index.html': '<h1>static</h1>', 'public/.env': 'SECRET=1' });
    const { plan, appDir } = await detectPlan(source, {});
    const { image } = await buildLocal({ sourceDir: appDir, plan, dataDir, imageName: 'site', tag: 'v1', stepTimeoutMs: 10_000, log: () => {} });
    assert.deepEqual(await runImage(dataDir, image, '/health'), { status: 200, body: 'ok' });
    assert.deepEqual(await runImage(dataDir, image, '/'), { status: 200, body: '<h1>static</h1>' });
    assert.equal((await runImage(dataDir, image, '/.env')).status, 404);
    assert.equal((await runImage(dataDir, image, '/..%2f..%2fpackage.json')).status, 404);
  });

  it('builds a Python app in a venv that still works once moved into the image store', async function () {
    if (spawnSync('python3', ['--version']).status !== 0) {
      this.test!.title += ' (skipped: python3 is not on PATH)';
      this.skip();
    }
    const source = repo({
      'main.py': `import os, sys, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (sys.prefix + ' ok').encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()
`,
    });
    const { plan, appDir } = await detectPlan(source, {});
    const { image } = await buildLocal({ sourceDir: appDir, plan, dataDir, imageName: 'py', tag: 'v1', stepTimeoutMs: 20_000, log: () => {} });
    const { dir } = await readImage(dataDir, image);
    const res = await runImage(dataDir, image, '/health');
    assert.equal(res.status, 200);
    assert.equal(res.body, `${path.join(dir, '.venv')} ok`, "python runs from the image's own venv");
  });

  it('fails with a BuildError naming the step, the command, the exit code and the last output', async () => {
    const rec = recorder();
    const plan = planOf(['echo preparing', 'echo "missing semicolon at line 3" >&2; exit 3', 'echo never']);
    const err = await buildLocal({ sourceDir: repo({ 'a.txt': '' }), plan, dataDir, imageName: 'bad', tag: 'v1', stepTimeoutMs: 10_000, log: rec.log }).then(
      () => assert.fail('the build should fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof BuildError);
    assert.equal(err.step, 'build');
    assert.equal(err.exitCode, 3);
    assert.match(err.message, /step "build" failed: `echo "missing semicolon at line 3" >&2; exit 3` exited with code 3/);
    assert.match(err.message, /last output:\n {2}missing semicolon at line 3/);
    assert.ok(rec.lines.some((l) => l.stream === 'stdout' && l.line === 'preparing'));
    assert.ok(rec.lines.some((l) => l.stream === 'stderr' && l.line === 'missing semicolon at line 3'));
    assert.ok(!rec.lines.some((l) => l.line === 'never'));
    assert.ok(!existsSync(path.join(dataDir, 'images/bad/v1')), 'no image is stored');
    assert.deepEqual(readdirSync(path.join(dataDir, 'builds')), []);

    const missing = await buildLocal({
      sourceDir: repo({}),
      plan: planOf(['no-such-tool --build']),
      dataDir,
      imageName: 'bad',
      tag: 'v2',
      stepTimeoutMs: 10_000,
      log: () => {},
    }).catch((e: Error) => e);
    assert.match(String(missing), /exited with code 127 \(command not found/);
  });

  it('redacts the secrets from its output before cutting long lines, and from the last output a failure quotes', async () => {
    const rec = recorder();
    const secret = 'straddling-secret-value-0123456789';
    // A 16 KB line cut would fall in the middle of the secret; the failure quotes the output's end.
    const plan = planOf([`printf '%16374s' x | tr ' ' x; echo "$TOKEN tail"; echo "using $TOKEN" >&2; exit 4`]);
    const err = await buildLocal({
      sourceDir: repo({}),
      plan,
      dataDir,
      imageName: 'leaky',
      tag: 'v1',
      stepTimeoutMs: 10_000,
      log: rec.log,
      secrets: { TOKEN: secret },
    }).catch((e: unknown) => e);
    assert.ok(err instanceof BuildError, String(err));
    assert.match(err.message, /last output:[\s\S]*using \[redacted\]/);
    assert.ok(err.message.length < 2000, `a message of ${err.message.length} characters`);
    const all = `${rec.text()}\n${err.message}\n${err.lastLines.join('\n')}`;
    for (const piece of [secret.slice(0, 8), secret.slice(8, 16), secret.slice(-8)]) assert.ok(!all.includes(piece), `"${piece}" of the secret shows`);
    assert.ok(
      rec.lines
        .map((l) => l.line)
        .join('')
        .includes('x[redacted] tail'),
    );
  });

  it('kills a step that outlives its timeout, children included, and says which step', async () => {
    const source = repo({});
    const pidFile = path.join(source, 'sleep.pid');
    const plan = planOf([`echo started; sleep 30 & echo $! > ${pidFile}; wait`]);
    const t0 = performance.now();
    const err = await buildLocal({ sourceDir: source, plan, dataDir, imageName: 'slow', tag: 'v1', stepTimeoutMs: 700, log: () => {} }).catch(
      (e: unknown) => e,
    );
    const took = performance.now() - t0;
    assert.ok(err instanceof BuildError, String(err));
    assert.ok(err.timedOut);
    assert.match(err.message, /step "build" timed out after 700 ms while running `echo started; sleep 30/);
    assert.ok(took < 3000, `took ${took} ms`);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(!alive(pid), 'the sleep started by the step is dead');
  });

  it('stops within a second when its AbortSignal fires', async () => {
    const source = repo({});
    const pidFile = path.join(source, 'sleep.pid');
    const controller = new AbortController();
    const plan = planOf([`sleep 30 & echo $! > ${pidFile}; echo started; wait`]);
    let abortedAt = 0;
    const log = (_stream: LogStream, line: string) => {
      if (line === 'started') {
        abortedAt = performance.now();
        controller.abort(new Error('canceled by the user'));
      }
    };
    const err = await buildLocal({
      sourceDir: source,
      plan,
      dataDir,
      imageName: 'cancel',
      tag: 'v1',
      signal: controller.signal,
      stepTimeoutMs: 60_000,
      log,
    }).catch((e: unknown) => e);
    assert.ok(err instanceof CanceledError, String(err));
    assert.ok(performance.now() - abortedAt < 1000, 'ended within a second of the abort');
    assert.ok(!alive(Number(readFileSync(pidFile, 'utf8'))));
    assert.deepEqual(readdirSync(path.join(dataDir, 'builds')), []);
    await assert.rejects(
      buildLocal({ sourceDir: source, plan, dataDir, imageName: 'cancel', tag: 'v2', signal: controller.signal, stepTimeoutMs: 1000, log }),
      CanceledError,
    );
  });

  it('hands each line over as it is written, not when the step ends', async () => {
    const rec = recorder();
    const plan = planOf(['echo first; sleep 1; printf "second"']);
    await buildLocal({ sourceDir: repo({}), plan, dataDir, imageName: 'stream', tag: 'v1', stepTimeoutMs: 10_000, log: rec.log });
    const first = rec.lines.find((l) => l.line === 'first');
    const second = rec.lines.find((l) => l.line === 'second'); // no newline: flushed at the end
    assert.ok(first && second);
    assert.ok(second.at - first.at > 800, `"first" arrived ${Math.round(second.at - first.at)} ms before "second"`);
  });

  it("gives commands a minimal environment: no control-plane secrets, their own HOME, the plan's variables", async () => {
    const rec = recorder();
    process.env.RHONE_TEST_CONTROL_PLANE_SECRET = 'must-not-leak';
    const plan: BuildPlan = {
      steps: [
        { name: 'install', commands: [{ path: '/app/bin' }, { cmd: 'env' }], variables: { TOOL_HOME: '/app/.tool' }, secrets: [] },
        { name: 'build', inputs: [{ step: 'install' }], commands: [{ cmd: 'echo "secret=$API_KEY path=$PATH tool=$TOOL_HOME"' }], secrets: ['*'] },
      ],
      deploy: { base: { image: 'x' }, startCommand: 'true', variables: { VENV: '/app/.venv' } },
    };
    try {
      const { image } = await buildLocal({
        sourceDir: repo({}),
        plan,
        dataDir,
        imageName: 'env',
        tag: 'v1',
        stepTimeoutMs: 10_000,
        log: rec.log,
        secrets: { API_KEY: 'k-123456' },
      });
      const env = rec.text();
      assert.doesNotMatch(env, /must-not-leak|RHONE_SESSION_SECRET|DATABASE_URL/);
      assert.doesNotMatch(env, /^API_KEY=/m, 'a step that asks for no secrets gets none');
      const home = env.match(/^HOME=(.*)$/m)?.[1] ?? '';
      assert.ok(home.startsWith(path.join(dataDir, 'builds')), home);
      const echoed = rec.lines.find((l) => l.line.startsWith('secret='))?.line ?? '';
      const workspace = path.join(path.dirname(home), 'app');
      // The value reached the command (and is redacted from its output as it is read).
      assert.equal(echoed.split(' ')[0], 'secret=[redacted]');
      assert.ok(echoed.includes(`path=${workspace}/bin:`), echoed);
      assert.ok(echoed.endsWith(`tool=${workspace}/.tool`), echoed);
      const { dir, manifest } = await readImage(dataDir, image);
      assert.equal(manifest.env?.VENV, path.join(dir, '.venv'), '/app means the image directory at run time');
    } finally {
      delete process.env.RHONE_TEST_CONTROL_PLANE_SECRET;
    }
  });

  it('runs file, copy and PATH commands as Railpack does, writing only inside the build', async () => {
    const rec = recorder();
    const plan: BuildPlan = {
      steps: [
        {
          name: 'build',
          assets: { tool: '#!/bin/sh\necho tool ran\n' },
          commands: [
            { path: '/app/bin/tool', name: 'tool', mode: 0o755 },
            { path: 'bin' },
            { src: 'config/app.json', dest: 'dist/app.json' },
            { path: '/etc/rhone-should-not-exist', name: 'tool' },
            { cmd: 'tool && cat dist/app.json' },
          ],
        },
      ],
      deploy: { base: { image: 'x' }, startCommand: 'true' },
    };
    const { image } = await buildLocal({
      sourceDir: repo({ 'config/app.json': '{"a":1}' }),
      plan,
      dataDir,
      imageName: 'cmds',
      tag: 'v1',
      stepTimeoutMs: 10_000,
      log: rec.log,
    });
    assert.ok(rec.lines.some((l) => l.stream === 'stdout' && l.line === 'tool ran'));
    assert.ok(rec.lines.some((l) => l.stream === 'stdout' && l.line === '{"a":1}'));
    assert.ok(rec.lines.some((l) => l.line.includes('skipped writing /etc/rhone-should-not-exist')));
    assert.ok(!existsSync('/etc/rhone-should-not-exist'));
    const { dir } = await readImage(dataDir, image);
    assert.ok(existsSync(path.join(dir, 'bin/tool')) && existsSync(path.join(dir, 'dist/app.json')));

    const escape = tempDir('rhone-outside-');
    const source = repo({});
    symlinkSync(escape, path.join(source, 'bin'));
    const err = await buildLocal({ sourceDir: source, plan, dataDir, imageName: 'cmds', tag: 'v2', stepTimeoutMs: 10_000, log: () => {} }).catch(
      (e: Error) => e,
    );
    assert.match(String(err), /writes \/app\/bin\/tool, which a symlink in the source points outside the build/);
    assert.deepEqual(readdirSync(escape), []);
  });

  it('runs steps after the steps they build on, and leaves out what the plan excludes', async () => {
    const rec = recorder();
    const plan: BuildPlan = {
      steps: [
        { name: 'build', inputs: [{ step: 'install' }], commands: [{ cmd: 'echo build' }] },
        { name: 'install', inputs: [{ step: 'packages' }], commands: [{ cmd: 'echo install' }] },
        { name: 'packages', commands: [{ cmd: 'echo packages' }] },
      ],
      exclude: ['*.log', 'private/', 'docs/**/draft.md'],
      deploy: { base: { image: 'x' }, startCommand: 'true' },
    };
    const source = repo({ 'app.js': '', 'debug.log': '', 'private/key': '', 'docs/a/draft.md': '', 'docs/a/final.md': '' });
    const { image } = await buildLocal({ sourceDir: source, plan, dataDir, imageName: 'order', tag: 'v1', stepTimeoutMs: 10_000, log: rec.log });
    assert.deepEqual(
      rec.lines.filter((l) => l.stream === 'stdout').map((l) => l.line),
      ['packages', 'install', 'build'],
    );
    const { dir } = await readImage(dataDir, image);
    assert.deepEqual(readdirSync(dir, { recursive: true }).map(String).sort(), ['app.js', 'docs', 'docs/a', 'docs/a/final.md', 'rhone-image.json']);

    plan.steps![2].inputs = [{ step: 'build' }];
    await assert.rejects(
      buildLocal({ sourceDir: source, plan, dataDir, imageName: 'order', tag: 'v2', stepTimeoutMs: 10_000, log: () => {} }),
      /depend on each other in a cycle: build → install → packages → build/,
    );
  });

  it('keeps a plan cache under /root between builds, as BuildKit cache mounts do', async () => {
    const plan = planOf(['mkdir -p ~/.cache/tool && cat ~/.cache/tool/count 2>/dev/null; echo x >> ~/.cache/tool/count'], 'true', { caches: ['tool'] });
    plan.caches = { tool: { directory: '/root/.cache/tool', type: 'shared' } };
    const first = recorder();
    await buildLocal({ sourceDir: repo({}), plan, dataDir, imageName: 'cache', tag: 'v1', stepTimeoutMs: 10_000, log: first.log });
    const second = recorder();
    await buildLocal({ sourceDir: repo({}), plan, dataDir, imageName: 'cache', tag: 'v2', stepTimeoutMs: 10_000, log: second.log });
    assert.ok(!first.lines.some((l) => l.line === 'x'));
    assert.ok(
      second.lines.some((l) => l.stream === 'stdout' && l.line === 'x'),
      "the second build saw the first one's cache",
    );
  });

  it('builds examples/hello-go when a Go toolchain is installed', async function () {
    if (spawnSync('go', ['version']).status !== 0) {
      this.test!.title += ' (skipped: no Go toolchain found, `go` is not on PATH)';
      this.skip();
    }
    this.timeout(300_000);
    const { plan, appDir } = await detectPlan(path.join(root, 'examples/hello-go'), {});
    const { image } = await buildLocal({ sourceDir: appDir, plan, dataDir, imageName: 'hello-go', tag: 'v1', stepTimeoutMs: 240_000, log: () => {} });
    const { dir } = await readImage(dataDir, image);
    assert.ok(existsSync(path.join(dir, 'out')));
    assert.deepEqual(await runImage(dataDir, image), { status: 200, body: 'ok' });
  });
});
