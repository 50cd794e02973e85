import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fetchCommit, resolveRef, SourceError, type SourceErrorCode } from '../backend/source/git.ts';
import { runGit } from '../backend/source/git-process.ts';
import { pinConfig, useLookup } from '../backend/source/remote-guard.ts';
import { until } from './support/until.ts';
import { commandLines, gitEnv, httpBackendPath, isDead, makeRepo, startGitHttpServer, type GitHttpServer, type TestRepo } from './source-git-fixtures.ts';

async function rejectsWith(promise: Promise<unknown>, code: SourceErrorCode, message?: RegExp): Promise<SourceError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof SourceError, `expected a SourceError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return err;
  }
  assert.fail(`expected a SourceError ${code}`);
}

/** Every file under dir, recursively, as bytes. */
function allFiles(dir: string): { file: string; bytes: Buffer }[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((name) => path.join(dir, name))
    .filter((file) => statSync(file).isFile())
    .map((file) => ({ file, bytes: readFileSync(file) }));
}

/** The files of a checkout, without .git. */
function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((n) => !n.startsWith('.git'))
    .sort();
}

describe('source: git', function () {
  this.timeout(30_000);
  let tmp: string;
  let repo: TestRepo;

  before(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'rhone-source-git-'));
    repo = makeRepo(tmp);
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  describe('resolveRef', () => {
    it('resolves branches, tags (peeled to the commit) and full refs', async () => {
      assert.deepEqual(await resolveRef(repo.fileUrl, 'main'), { sha: repo.second });
      assert.deepEqual(await resolveRef(repo.fileUrl, 'feature'), { sha: repo.feature });
      assert.deepEqual(await resolveRef(repo.fileUrl, 'v1'), { sha: repo.first });
      assert.deepEqual(await resolveRef(repo.fileUrl, 'refs/heads/feature'), { sha: repo.feature });
    });

    it('returns a full SHA as given, without asking the remote', async () => {
      assert.deepEqual(await resolveRef(repo.fileUrl, repo.first.toUpperCase()), { sha: repo.first });
      assert.deepEqual(await resolveRef('file:///nonexistent/repo.git', repo.first), { sha: repo.first });
    });

    it('says which branch is missing from which repository', async () => {
      await rejectsWith(resolveRef(repo.fileUrl, 'nope'), 'ref_not_found', new RegExp(`^branch 'nope' was not found in ${repo.fileUrl}`));
      await rejectsWith(resolveRef(repo.fileUrl, repo.first.slice(0, 7)), 'ref_not_found', /full 40-character SHA/);
    });

    it('refuses refs and URLs that are not what they claim to be', async () => {
      for (const ref of ['-uorigin', '--upload-pack=touch /tmp/x', 'a..b', 'has space', '']) {
        await rejectsWith(resolveRef(repo.fileUrl, ref), 'invalid_ref');
      }
      await rejectsWith(resolveRef('ext::sh -c touch% /tmp/pwned', 'main'), 'invalid_url');
      await rejectsWith(resolveRef('git@github.com:o/r.git', 'main'), 'invalid_url');
      const err = await rejectsWith(resolveRef('https://user:hunter2@example.com/o/r.git', 'main'), 'invalid_url');
      assert.doesNotMatch(err.message, /hunter2/);
    });

    it('tells a missing repository from an unreachable host', async () => {
      await rejectsWith(resolveRef(`file://${tmp}/missing.git`, 'main'), 'repo_not_found', /was not found/);
      const port = await closedPort();
      const err = await rejectsWith(resolveRef(`http://127.0.0.1:${port}/app.git`, 'main'), 'unreachable', /could not be reached/);
      assert.equal(err.transient, true);
    });
  });

  describe("a user's URL in production (publicOnly)", () => {
    let restore: () => void;
    before(() => {
      restore = useLookup(async (host) => {
        if (host === 'internal.example.com') return ['10.0.0.7'];
        throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      });
    });
    after(() => restore());

    it('refuses hosts that are or resolve to non-public addresses before git runs', async () => {
      for (const url of ['https://internal.example.com/app.git', 'https://169.254.169.254/latest.git', 'https://[::1]/app.git', 'https://localhost/app.git']) {
        const err = await rejectsWith(resolveRef(url, 'main', { publicOnly: true }), 'blocked_host', /not a public one/);
        assert.equal(err.transient, false);
        await rejectsWith(fetchCommit({ url, sha: repo.first, dir: path.join(tmp, 'blocked'), publicOnly: true }), 'blocked_host');
      }
      assert.equal(readdirSync(tmp).includes('blocked'), false, 'no workspace was made');
      await rejectsWith(resolveRef('https://nowhere.invalid/app.git', 'main', { publicOnly: true }), 'blocked_host', /could not be resolved/);
    });
  });

  describe('fetchCommit', () => {
    it('fetches exactly the pinned commit, not the branch head', async () => {
      const dir = path.join(tmp, 'checkout-first');
      const lines: string[] = [];
      const commit = await fetchCommit({ url: repo.fileUrl, sha: repo.first, dir, log: (l) => lines.push(l) });
      assert.deepEqual(commit, { sha: repo.first, message: 'First commit\n\nWith a body line.', author: 'Test Author <test@example.com>' });
      assert.deepEqual(tree(dir), ['README.md', 'hello.txt']);
      assert.equal(readFileSync(path.join(dir, 'hello.txt'), 'utf8'), 'v1\n');
      // Shallow: the commit's parent is not there. Detached: HEAD is the SHA itself.
      assert.equal(readFileSync(path.join(dir, '.git', 'shallow'), 'utf8').trim(), repo.first);
      assert.equal(readFileSync(path.join(dir, '.git', 'HEAD'), 'utf8').trim(), repo.first);
      assert.doesNotMatch(readFileSync(path.join(dir, '.git', 'config'), 'utf8'), /remote|url/);
      assert.ok(lines.length > 0, 'git progress reaches the log');
      assert.ok(lines.every((l) => !l.includes('\r') && !l.includes('\n') && l === l.trimEnd()));
    });

    it('starts clean in a workspace a failed attempt left behind', async () => {
      const dir = path.join(tmp, 'checkout-retry');
      await fetchCommit({ url: repo.fileUrl, sha: repo.feature, dir });
      const commit = await fetchCommit({ url: repo.fileUrl, sha: repo.first, dir });
      assert.equal(commit.sha, repo.first);
      assert.deepEqual(tree(dir), ['README.md', 'hello.txt']);
    });

    it('says so when the commit is not in the repository', async () => {
      const ghost = randomBytes(20).toString('hex');
      await rejectsWith(fetchCommit({ url: repo.fileUrl, sha: ghost, dir: path.join(tmp, 'ghost') }), 'commit_not_found', /force-pushed/);
      await rejectsWith(fetchCommit({ url: repo.fileUrl, sha: 'main', dir: path.join(tmp, 'x') }), 'invalid_ref');
    });

    it('refuses, before checking out, a commit whose files add up to more than the limits', async () => {
      // 3 MiB of zeros is a few kilobytes in git's pack: the size that counts is the checkout's.
      const work = path.join(tmp, 'bomb-work');
      mkdirSync(path.join(work, 'dir'), { recursive: true });
      writeFileSync(path.join(work, 'zeros.bin'), Buffer.alloc(3 * 1024 * 1024));
      writeFileSync(path.join(work, 'dir', 'a.txt'), 'a');
      writeFileSync(path.join(work, 'dir', 'b.txt'), 'b');
      const env = gitEnv(path.join(tmp, 'home'));
      const git = (...args: string[]) =>
        execFileSync('git', ['-c', 'user.name=T', '-c', 'user.email=t@example.com', ...args], { cwd: work, env, encoding: 'utf8' }).trim();
      git('init', '-q', '-b', 'main');
      git('add', '.');
      git('commit', '-q', '-m', 'bomb');
      const sha = git('rev-parse', 'HEAD');
      const url = `file://${work}`;
      const settings = { bytes: 'RHONE_MAX_SOURCE_BYTES', entries: 'RHONE_MAX_SOURCE_FILES' };

      const dir = path.join(tmp, 'checkout-bomb');
      const bytes = await rejectsWith(
        fetchCommit({ url, sha, dir, limits: { maxBytes: 1024 * 1024, maxEntries: 100, settings } }),
        'too_large',
        /^The files of the repository add up to 3 MiB, over the 1 MiB limit \(RHONE_MAX_SOURCE_BYTES\)\./,
      );
      assert.equal(bytes.transient, false);
      assert.deepEqual(tree(dir), [], 'nothing was checked out');
      // zeros.bin, dir, dir/a.txt, dir/b.txt
      await rejectsWith(
        fetchCommit({ url, sha, dir, limits: { maxBytes: 10 * 1024 * 1024, maxEntries: 3, settings } }),
        'too_large',
        /^The repository holds 4 files and directories, over the 3 limit \(RHONE_MAX_SOURCE_FILES\)\./,
      );
      const ok = await fetchCommit({ url, sha, dir, limits: { maxBytes: 4 * 1024 * 1024, maxEntries: 4, settings } });
      assert.equal(ok.sha, sha);
      assert.deepEqual(tree(dir), ['dir', 'dir/a.txt', 'dir/b.txt', 'zeros.bin']);
    });

    it('stops at once when the signal is already aborted', async () => {
      const controller = new AbortController();
      controller.abort();
      await rejectsWith(fetchCommit({ url: repo.fileUrl, sha: repo.first, dir: path.join(tmp, 'aborted'), signal: controller.signal }), 'canceled');
    });
  });

  describe('over HTTP with credentials (git http-backend)', () => {
    const username = 'x-access-token';
    const password = `ghs_${randomBytes(16).toString('hex')}`;
    const base64 = Buffer.from(`${username}:${password}`).toString('base64');
    let server: GitHttpServer;

    before(async function () {
      const backend = httpBackendPath();
      if (!backend) {
        console.warn('git http-backend is not installed: the HTTP credential tests are skipped');
        this.skip();
      }
      server = await startGitHttpServer({ backend, serveDir: repo.serveDir, home: path.join(tmp, 'home'), username, password });
    });
    after(() => server?.close());

    it('resolves a branch and fetches a commit with Basic auth, the password never in argv, .git or the log', async () => {
      const url = `${server.url}/app.git`;
      const credentials = { username, password };
      assert.deepEqual(await resolveRef(url, 'feature', { credentials }), { sha: repo.feature });

      const dir = path.join(tmp, 'checkout-http');
      const lines: string[] = [];
      const commit = await fetchCommit({ url, sha: repo.first, dir, credentials, log: (l) => lines.push(l) });
      assert.equal(commit.sha, repo.first);
      assert.deepEqual(tree(dir), ['README.md', 'hello.txt']);

      // The server saw the credentials, after a 401 asked for them.
      assert.ok(server.refused > 0, 'the first request went without credentials and was refused');
      assert.ok(server.authorized.length > 0 && server.authorized.every((h) => h === `Basic ${base64}`));
      // Git processes were caught mid-request, and none carried the password in its argv.
      assert.ok(
        server.gitCommandLines.some((argv) => argv.includes(url)),
        'the argv scan saw the fetching git',
      );
      for (const argv of server.gitCommandLines) {
        assert.ok(!argv.includes(password) && !argv.includes(base64), `password in argv: ${argv}`);
      }
      for (const { file, bytes } of allFiles(path.join(dir, '.git'))) {
        assert.ok(!bytes.includes(password) && !bytes.includes(base64), `password in ${file}`);
      }
      assert.ok(lines.length > 0);
      assert.ok(lines.every((l) => !l.includes(password)));
    });

    it('pins git to the checked address: curl connects there whatever DNS would say', async () => {
      // git.rhone-pin.invalid resolves nowhere (RFC 6761): only the pin can take git to the server.
      const port = Number(new URL(server.url).port);
      const url = `http://git.rhone-pin.invalid:${port}/app.git`;
      const run = (config: string[]) =>
        runGit(['ls-remote', url, 'refs/heads/main'], { config, credentials: { username, password }, protocols: ['http'], timeoutMs: 10_000 });
      const unpinned = await run([]);
      assert.notEqual(unpinned.code, 0);
      assert.match(unpinned.stderr, /Could not resolve host/);
      const pinned = await run(pinConfig({ host: 'git.rhone-pin.invalid', port, addresses: ['127.0.0.1'] }));
      assert.equal(pinned.code, 0, pinned.stderr);
      assert.match(pinned.stdout, new RegExp(`^${repo.second}\trefs/heads/main`));
    });

    it('refuses a wrong password with a message that names the repository, not the secret', async () => {
      const url = `${server.url}/app.git`;
      const wrong = { username, password: 'not-the-password' };
      const err = await rejectsWith(
        fetchCommit({ url, sha: repo.first, dir: path.join(tmp, 'wrong'), credentials: wrong }),
        'auth_failed',
        /refused Rhone's credentials/,
      );
      assert.doesNotMatch(err.message, /not-the-password/);
      assert.equal(err.transient, false);
      await rejectsWith(resolveRef(url, 'main', { credentials: wrong }), 'auth_failed');
      await rejectsWith(resolveRef(url, 'main'), 'auth_failed', /is the repository private/);
    });

    it('kills git when the fetch is canceled mid-way', async () => {
      const url = `${server.url}/slow/app.git`;
      const controller = new AbortController();
      const fetching = fetchCommit({ url, sha: repo.first, dir: path.join(tmp, 'canceled'), credentials: { username, password }, signal: controller.signal });
      const pids = await until('git to start fetching from the held server', () => {
        if (server.held.length === 0) return null;
        const found = commandLines()
          .filter((p) => p.argv.includes(url))
          .map((p) => p.pid);
        return found.length > 0 ? found : null;
      });
      const started = Date.now();
      controller.abort();
      await rejectsWith(fetching, 'canceled');
      assert.ok(Date.now() - started < 3_000, 'cancel does not wait for git');
      assert.deepEqual(
        pids.filter((pid) => !isDead(pid)),
        [],
        'no git process outlives the cancel',
      );
    });

    it('stops a fetch that outlives its timeout', async () => {
      const url = `${server.url}/slow/app.git`;
      const err = await rejectsWith(
        fetchCommit({ url, sha: repo.first, dir: path.join(tmp, 'slow'), credentials: { username, password }, timeoutMs: 1_500 }),
        'timeout',
        /took too long/,
      );
      assert.equal(err.transient, true);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(
        commandLines().filter((p) => p.argv.includes(url) && !isDead(p.pid)),
        [],
      );
    });
  });
});

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
