// The control plane's image must carry the tools production's stages run: `railpack` (analyze) at
// the version Rhone pins, verified when downloaded, and `buildctl` (build) from the builder's
// BuildKit release. Docker cannot run here, so the Dockerfile is read, and its railpack download
// step is run as written against a fake release server (a stand-in `curl`).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { RAILPACK_VERSION, railpackCliVersion } from '../backend/builder/railpack.ts';
import { checkRailpackOnce } from '../jobs/processors/analyze.ts';
import { cleanupTemp, root, tempDir } from './builder-support.ts';

interface Stage {
  from: string;
  name?: string;
  /** Instructions, continuation lines joined, comments dropped. */
  instructions: string[];
}

/** The global ARGs and the stages of a Dockerfile. */
function parseDockerfile(file: string): { args: Record<string, string>; stages: Stage[] } {
  const text = readFileSync(file, 'utf8').replace(/\\\n/g, ' ');
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of text.split('\n').map((l) => l.trim())) {
    if (line === '' || line.startsWith('#')) continue;
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) stages.push({ from: from[1], name: from[2], instructions: [] });
    else if (stages.length === 0) {
      const arg = /^ARG\s+([A-Z_]+)=(\S*)/.exec(line);
      if (arg) args[arg[1]] = arg[2];
    } else stages[stages.length - 1].instructions.push(line);
  }
  return { args, stages };
}

describe('the control plane image (Dockerfile)', () => {
  const dockerfile = parseDockerfile(path.join(root, 'Dockerfile'));
  const stage = (name: string) => dockerfile.stages.find((s) => s.name === name);
  const final = dockerfile.stages[dockerfile.stages.length - 1];
  let work: string;

  beforeEach(() => {
    work = tempDir('rhone-dockerfile-');
  });
  afterEach(cleanupTemp);

  it("pins the railpack version Rhone expects and puts the CLI on the final image's PATH", () => {
    assert.equal(dockerfile.args.RAILPACK_VERSION, RAILPACK_VERSION, 'Dockerfile RAILPACK_VERSION and backend/builder/railpack.ts differ');
    assert.ok(stage('railpack'), 'a stage named railpack downloads the CLI');
    assert.ok(final.instructions.includes('COPY --from=railpack /usr/local/bin/railpack /usr/local/bin/railpack'), final.instructions.join('\n'));
  });

  it('runs the dashboard build and the control plane on a maintained Node.js LTS (22 or newer)', () => {
    const major = Number(/^(\d+)-/.exec(dockerfile.args.NODE_IMAGE ?? '')?.[1]);
    assert.ok(major >= 22 && major % 2 === 0, `NODE_IMAGE ${dockerfile.args.NODE_IMAGE} is not an even (LTS) line of 22 or newer`);
    assert.equal(stage('dashboard')?.from, 'node:${NODE_IMAGE}');
    assert.equal(final.from, 'node:${NODE_IMAGE}');
  });

  it('ships buildctl from the same BuildKit release as the builder image', () => {
    const builder = parseDockerfile(path.join(root, 'builder-image', 'Dockerfile'));
    assert.equal(dockerfile.args.BUILDKIT_VERSION, builder.args.BUILDKIT_VERSION);
    assert.equal(stage('buildkit')?.from, 'moby/buildkit:${BUILDKIT_VERSION}');
    assert.ok(final.instructions.includes('COPY --from=buildkit /usr/bin/buildctl /usr/local/bin/buildctl'), final.instructions.join('\n'));
  });

  describe('the railpack download step, run as written', () => {
    const version = dockerfile.args.RAILPACK_VERSION;
    const archive = `railpack-v${version}-x86_64-unknown-linux-musl.tar.gz`;
    let release: string;
    let bin: string;

    /** A release as goreleaser publishes it: the archive (binary at its root) and checksums.txt. */
    function publish(options: { tamper?: boolean } = {}): string {
      const pkg = path.join(work, 'pkg');
      mkdirSync(pkg, { recursive: true });
      writeFileSync(path.join(pkg, 'railpack'), `#!/bin/sh\necho "railpack version ${version}"\n`);
      chmodSync(path.join(pkg, 'railpack'), 0o755);
      writeFileSync(path.join(pkg, 'README.md'), 'railpack');
      assert.equal(spawnSync('tar', ['-czf', path.join(release, archive), '-C', pkg, 'railpack', 'README.md']).status, 0);
      const digest = createHash('sha256')
        .update(readFileSync(path.join(release, archive)))
        .digest('hex');
      const other = createHash('sha256').update('other').digest('hex');
      writeFileSync(path.join(release, 'checksums.txt'), `${other}  railpack-v${version}-arm64-unknown-linux-musl.tar.gz\n${digest}  ${archive}\n`);
      if (options.tamper) writeFileSync(path.join(release, archive), Buffer.concat([readFileSync(path.join(release, archive)), Buffer.from('x')]));
      return digest;
    }

    /** Runs the stage's download RUN with /usr/local/bin pointed at a scratch directory. */
    function runDownload(env: Record<string, string> = {}) {
      const run = stage('railpack')!.instructions.find((i) => i.startsWith('RUN ') && i.includes('checksums.txt'));
      assert.ok(run, 'the railpack stage downloads the release and its checksums.txt');
      const script = run.slice('RUN '.length).replaceAll('/usr/local/bin/', `${bin}/`);
      const cwd = path.join(work, 'cwd');
      mkdirSync(cwd, { recursive: true });
      return spawnSync('sh', ['-c', script], {
        cwd,
        encoding: 'utf8',
        env: { PATH: `${path.join(work, 'fake')}:${process.env.PATH}`, RAILPACK_VERSION: version, RAILPACK_SHA256: '', TARGETARCH: 'amd64', ...env },
      });
    }

    beforeEach(() => {
      release = path.join(work, 'release');
      bin = path.join(work, 'bin');
      mkdirSync(release);
      mkdirSync(bin);
      mkdirSync(path.join(work, 'fake'));
      // curl -fsSL --retry 3 -o FILE URL, answered from the fake release for its GitHub URL only.
      writeFileSync(
        path.join(work, 'fake', 'curl'),
        `#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in -o) out="$2"; shift ;; https://*) url="$1" ;; esac; shift; done
echo "$url" >> '${work}/fetched'
case "$url" in
  https://github.com/railwayapp/railpack/releases/download/v${version}/*) ;;
  *) echo "curl: (22) The requested URL returned error: 404" >&2; exit 22 ;;
esac
[ -f '${release}'/"\${url##*/}" ] || { echo "curl: (22) The requested URL returned error: 404" >&2; exit 22; }
cp '${release}'/"\${url##*/}" "$out"
`,
      );
      chmodSync(path.join(work, 'fake', 'curl'), 0o755);
    });

    it('installs the pinned release after checking it against the published checksums', () => {
      publish();
      const result = runDownload();
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`railpack version ${version.replace(/\./g, '\\.')}`));
      assert.deepEqual(readFileSync(path.join(work, 'fetched'), 'utf8').trim().split('\n'), [
        `https://github.com/railwayapp/railpack/releases/download/v${version}/${archive}`,
        `https://github.com/railwayapp/railpack/releases/download/v${version}/checksums.txt`,
      ]);
      assert.ok(existsSync(path.join(bin, 'railpack')));
    });

    it('refuses an archive that does not match its checksum, or a pinned digest', () => {
      publish({ tamper: true });
      const tampered = runDownload();
      assert.notEqual(tampered.status, 0);
      assert.match(tampered.stdout + tampered.stderr, /FAILED|did NOT match/);
      assert.equal(existsSync(path.join(bin, 'railpack')), false, 'nothing was installed');

      const digest = publish();
      assert.equal(runDownload({ RAILPACK_SHA256: digest }).status, 0, 'the right pinned digest passes');
      const wrong = runDownload({ RAILPACK_SHA256: createHash('sha256').update('not it').digest('hex') });
      assert.notEqual(wrong.status, 0, 'a pinned digest that differs fails the build');
    });

    it('fails when the release lists no checksum for the archive', () => {
      publish();
      writeFileSync(path.join(release, 'checksums.txt'), `${createHash('sha256').update('x').digest('hex')}  something-else.tar.gz\n`);
      assert.notEqual(runDownload().status, 0);
      assert.equal(existsSync(path.join(bin, 'railpack')), false);
    });
  });

  describe("the analyze stage's railpack version check", () => {
    function fakeRailpack(output: string): string {
      const file = path.join(work, `railpack-${Math.random().toString(36).slice(2)}`);
      writeFileSync(file, `#!/bin/sh\n[ "$1" = "--version" ] && echo "${output}"\n`);
      chmodSync(file, 0o755);
      return file;
    }

    function recorder() {
      const calls: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
      const log = {
        info: (obj: Record<string, unknown>, msg: string) => calls.push({ level: 'info', obj, msg }),
        warn: (obj: Record<string, unknown>, msg: string) => calls.push({ level: 'warn', obj, msg }),
      } as unknown as Logger;
      return { log, calls };
    }

    it("reads the CLI's version and logs it once per worker process", async () => {
      assert.equal(await railpackCliVersion(fakeRailpack('railpack version 0.37.0')), '0.37.0');
      const bin = fakeRailpack(`railpack version ${RAILPACK_VERSION}`);
      const { log, calls } = recorder();
      await checkRailpackOnce(log, bin);
      await checkRailpackOnce(log, bin);
      assert.deepEqual(
        calls.map((c) => [c.level, c.obj.railpackVersion]),
        [['info', RAILPACK_VERSION]],
      );
    });

    it('warns when the CLI is not the pinned version, and when it cannot be run', async () => {
      const { log, calls } = recorder();
      await checkRailpackOnce(log, fakeRailpack('railpack version 0.1.0'));
      assert.equal(calls[0].level, 'warn');
      assert.deepEqual([calls[0].obj.railpackVersion, calls[0].obj.expected], ['0.1.0', RAILPACK_VERSION]);
      await checkRailpackOnce(log, path.join(work, 'no-such-railpack'));
      assert.equal(calls[1].level, 'warn');
      assert.match(String((calls[1].obj.err as Error).message), /was not found/);
    });
  });
});
