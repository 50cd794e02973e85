// Production's build: buildctl against the rootless BuildKit builder (builder-image/), with the
// Railpack frontend turning the plan into LLB and the image pushed straight to the registry
// (railwayapp/railpack buildkit/frontend.go; moby/buildkit's README, "Image/Registry", for the
// client answering the daemon's registry auth). Credentials never touch argv: the registry login goes in a per-build
// DOCKER_CONFIG, the app's secrets in files, the mTLS client key in a --tlsdir, all in a 0700
// temporary directory that is removed when buildctl is done.
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { hostEnv } from '../../local/processes.ts';
import { BuildError, CanceledError, quoteOutput } from './errors.ts';
import { createRedactor } from '../deployments/redact.ts';
import { parseBuildPlan } from './plan.ts';
import { runProcess } from './process.ts';
import { type BuildLogStream, RAWJSON_LINE_MAX, RawJsonDecoder } from './rawjson.ts';
import { RAILPACK_VERSION, railpackFrontendImage } from './railpack.ts';

export { decodeRawJson, RawJsonDecoder } from './rawjson.ts';
export type { BuildLogLine, BuildLogStream, SolveStatus } from './rawjson.ts';

export interface BuildkitBuildOptions {
  /** The app's directory: what `railpack prepare` analyzed. */
  contextDir: string;
  /** railpack-plan.json; its directory is sent to BuildKit as the `dockerfile` source, so keep it small. */
  planPath: string;
  /** Where to push, e.g. registry.fly.io/rhone-shop:dep-42. */
  image: string;
  /** e.g. tcp://rhone-builder.internal:1234 */
  builderAddr: string;
  /** Fly's registry takes user "x" and an API token as the password. */
  registryAuth: { username: string; password: string };
  signal?: AbortSignal;
  log: (stream: BuildLogStream, line: string) => void;
  /** The CLI version that wrote the plan: the frontend must match it. */
  railpackVersion?: string;
  /** Overrides the frontend image derived from railpackVersion. */
  frontendImage?: string;
  /** One platform only (the frontend takes one); Fly runs linux/amd64. */
  platform?: string;
  /** Prefix of the plan's cache mount IDs: the app's id, so apps on a shared builder never share caches. */
  cacheKey?: string;
  /** Values for the plan's secrets (the app's env vars), mounted as env vars in the build's commands. */
  secrets?: Record<string, string>;
  /**
   * A registry reference for BuildKit's layer cache, e.g. registry.fly.io/rhone-shop:buildcache:
   * exported after the build (all intermediate layers) and imported before it, so the cache
   * survives the builder's volume. Needs the same login as the push.
   */
  registryCache?: string;
  /** mTLS to the builder (PEM strings); see builder-image/README.md. */
  tls?: { caCert: string; cert: string; key: string; serverName?: string };
  timeoutMs?: number;
  buildctlBin?: string;
}

export interface BuildkitBuildResult {
  image: string;
  /** containerimage.digest from buildctl's metadata file: deploy `<repo>@<digest>` to pin exactly this build. */
  digest?: string;
  durationMs: number;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const TAIL_LINES = 20;

export async function buildWithBuildkit(options: BuildkitBuildOptions): Promise<BuildkitBuildResult> {
  const started = performance.now();
  if (options.signal?.aborted) throw new CanceledError('the build was canceled', { cause: options.signal.reason });
  const plan = parseBuildPlan(JSON.parse(await readFile(options.planPath, 'utf8')));
  const secretNames = (plan.secrets ?? []).filter((n) => ENV_NAME.test(n));
  const work = await mkdtemp(path.join(os.tmpdir(), 'rhone-buildctl-')); // mode 0700
  try {
    const dockerConfig = path.join(work, 'docker');
    await mkdir(dockerConfig, { mode: 0o700 });
    await writePrivate(path.join(dockerConfig, 'config.json'), dockerConfigJson(options.image, options.registryAuth));

    const argv = [options.buildctlBin ?? 'buildctl', '--addr', options.builderAddr];
    if (options.tls) {
      const tlsDir = path.join(work, 'tls');
      await mkdir(tlsDir, { mode: 0o700 });
      await writePrivate(path.join(tlsDir, 'ca.pem'), options.tls.caCert);
      await writePrivate(path.join(tlsDir, 'cert.pem'), options.tls.cert);
      await writePrivate(path.join(tlsDir, 'key.pem'), options.tls.key);
      argv.push('--tlsdir', tlsDir);
      if (options.tls.serverName) argv.push('--tlsservername', options.tls.serverName);
    }
    const metadataFile = path.join(work, 'metadata.json');
    argv.push(
      'build',
      '--frontend',
      'gateway.v0',
      '--opt',
      `source=${options.frontendImage ?? railpackFrontendImage(options.railpackVersion ?? RAILPACK_VERSION)}`,
      '--local',
      `context=${options.contextDir}`,
      '--local',
      `dockerfile=${path.dirname(options.planPath)}`,
      '--opt',
      `filename=${path.basename(options.planPath)}`,
      '--opt',
      `platform=${options.platform ?? 'linux/amd64'}`,
    );
    // With buildctl the build-arg: prefix is required: a bare cache-key option is ignored
    // (railpack buildkit/frontend.go parseBuildArgs reads only build-arg:* options).
    if (options.cacheKey) argv.push('--opt', `build-arg:cache-key=${options.cacheKey}`);
    if (secretNames.length) {
      // Every plan secret must be provided or the solve fails, and a changed value must bust the
      // cache: Railpack mounts each plan secret into every step and does not hash values itself
      // (railpack docs architecture/secrets.md, buildkit/build_llb/build_graph.go).
      const secretsDir = path.join(work, 'secrets');
      await mkdir(secretsDir, { mode: 0o700 });
      const values = secretNames.map((name) => [name, options.secrets?.[name] ?? ''] as const);
      for (const [i, [name, value]] of values.entries()) {
        const file = path.join(secretsDir, String(i));
        await writePrivate(file, value);
        argv.push('--secret', `id=${name},src=${file}`);
      }
      argv.push('--opt', `build-arg:secrets-hash=${secretsHash(values)}`);
    }
    if (options.registryCache) argv.push(...registryCacheArgs(options.registryCache));
    argv.push('--output', `type=image,name=${options.image},push=true`, '--metadata-file', metadataFile, '--progress', 'rawjson');

    const decoder = new RawJsonDecoder();
    const tail: string[] = [];
    // The commands' output reaches us base64-encoded inside rawjson, so it is redacted once decoded:
    // what is logged, and what a failure quotes, never holds an env value.
    const redact = createRedactor([...Object.values(options.secrets ?? {}), options.registryAuth.password]);
    const emit = (stream: BuildLogStream, raw: string) => {
      const line = redact(raw);
      if (stream === 'stderr') {
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
      }
      options.log(stream, line);
    };
    const result = await runProcess(argv, {
      cwd: work,
      env: { ...hostEnv(), DOCKER_CONFIG: dockerConfig },
      signal: options.signal,
      timeoutMs: options.timeoutMs,
      // buildctl's own plain-text messages may quote a value too: redact the stream before it is
      // cut into lines. Its rawjson lines are held whole to be parsed (a status line carries up
      // to ~1.4 MB of a step's output, rawjson.ts RAWJSON_LINE_MAX says why): cut at a fixed
      // 16 KB they would be logged as fragments of JSON and the failed step's error lost.
      redact,
      maxLine: { stderr: RAWJSON_LINE_MAX },
      // Progress (rawjson) is on stderr; stdout carries nothing with an image output, but pass it on.
      onLine: (stream, line) => {
        if (stream === 'stdout') return emit('stdout', line);
        for (const decoded of decoder.decode(line)) emit(decoded.stream, decoded.line);
      },
    }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new Error(`buildctl (${argv[0]}) was not found: install it in the worker's image`);
      throw err;
    });
    for (const decoded of decoder.flush()) emit(decoded.stream, decoded.line);

    if (result.aborted) throw new CanceledError('the build was canceled', { cause: options.signal?.reason });
    const failed = decoder.lastError;
    const details = { step: failed?.vertex, exitCode: result.code, signal: result.signal, lastLines: tail };
    if (result.timedOut) {
      throw new BuildError(`the image build timed out after ${Math.round((options.timeoutMs ?? 0) / 1000)} s and was stopped`, { ...details, timedOut: true });
    }
    if (result.code !== 0) {
      const why = failed
        ? redact(`"${failed.vertex}" failed: ${failed.error}`)
        : quoteOutput(tail.slice(-5), 800).join(' / ') || `buildctl exited with code ${result.code}`;
      throw new BuildError(`the image build failed: ${why}`, details);
    }
    const digest = await readDigest(metadataFile);
    return { image: options.image, ...(digest ? { digest } : {}), durationMs: Math.round(performance.now() - started) };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * buildctl's registry cache flags (moby/buildkit README, "Registry (push image and cache
 * separately)"). `mode=max` exports the layers of every step, not only the final image's, which
 * is what makes a dependency install step a cache hit. `image-manifest=true` with
 * `oci-mediatypes=true` stores the cache as an OCI image manifest rather than an index whose
 * entries are not images; both are BuildKit's defaults since v0.21 (the builder runs v0.32.2,
 * builder-image/Dockerfile) and are spelled out so an older daemon writes the same thing, as
 * registries other than Docker Hub are known to refuse the index form (ECR did). Unverified:
 * whether registry.fly.io accepts either form of cache manifest; `ignore-error=true` keeps a
 * refused cache export from failing a build whose image was pushed, and a cache that is absent
 * on import is a cache miss to BuildKit, not an error. Mount caches (the plan's `caches`) are
 * not part of any cache export (moby/buildkit#1474); they stay on the builder's volume.
 */
export function registryCacheArgs(ref: string): string[] {
  return [
    '--export-cache',
    `type=registry,ref=${ref},mode=max,image-manifest=true,oci-mediatypes=true,ignore-error=true`,
    '--import-cache',
    `type=registry,ref=${ref}`,
  ];
}

async function writePrivate(file: string, content: string): Promise<void> {
  await writeFile(file, content, { mode: 0o600 });
  await chmod(file, 0o600); // the mode option is subject to the umask; be exact
}

/** A DOCKER_CONFIG config.json holding one login, as `fly auth docker` writes it. */
export function dockerConfigJson(image: string, auth: { username: string; password: string }): string {
  const auths = { [registryHost(image)]: { auth: Buffer.from(`${auth.username}:${auth.password}`).toString('base64') } };
  return `${JSON.stringify({ auths }, null, 2)}\n`;
}

/** The registry an image reference points at (Docker's rule: a first part with a dot, a colon, or localhost). */
export function registryHost(image: string): string {
  const first = image.split('/')[0];
  if (image.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) return first;
  return 'https://index.docker.io/v1/';
}

/** sha256 over sorted KEY=VALUE lines: deterministic, unlike the Railpack CLI's getSecretsHash, which iterates a Go map. */
export function secretsHash(values: ReadonlyArray<readonly [string, string]>): string {
  const lines = values.map(([k, v]) => `${k}=${v}`).sort();
  return createHash('sha256').update(lines.join('\n')).digest('hex');
}

async function readDigest(metadataFile: string): Promise<string | undefined> {
  try {
    const meta = JSON.parse(await readFile(metadataFile, 'utf8')) as Record<string, unknown>;
    const digest = meta['containerimage.digest'];
    return typeof digest === 'string' ? digest : undefined;
  } catch {
    return undefined;
  }
}
