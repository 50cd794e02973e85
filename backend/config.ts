// The one place that reads the environment. Parsed once at start with zod; a bad or missing
// setting stops the process with one message listing every problem.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { DEFAULT_BUILD_IMAGE_ALLOWLIST } from './builder/image-allowlist.ts';

const emptyToUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const optionalString = z.preprocess(emptyToUndefined, z.string().optional());
const GIB = 1024 ** 3;
const positiveInt = (fallback: number) => z.preprocess(emptyToUndefined, z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER).default(fallback));
const port = (fallback: number) => z.preprocess(emptyToUndefined, z.coerce.number().int().min(0).max(65535).default(fallback));

const schema = z.object({
  RHONE_MODE: z.preprocess(emptyToUndefined, z.enum(['local', 'production']).default('local')),
  PORT: port(3000),
  RHONE_PUBLIC_URL: z.preprocess(emptyToUndefined, z.url().optional()),
  DATABASE_URL: z.preprocess(emptyToUndefined, z.string().default('postgres://postgres@127.0.0.1:5432/rhone')),
  REDIS_URL: z.preprocess(emptyToUndefined, z.string().default('redis://127.0.0.1:6379/0')),
  RHONE_DATA_DIR: z.preprocess(emptyToUndefined, z.string().default('./.rhone')),
  RHONE_SESSION_SECRET: z.preprocess(emptyToUndefined, z.string().min(32, 'must be at least 32 characters').optional()),
  RHONE_ENCRYPTION_KEYS: optionalString,
  RHONE_APPS_DOMAIN: optionalString,
  RHONE_ROUTER_PORT: port(8080),
  RHONE_MACHINES_PORT: port(4280),
  LOG_LEVEL: z.preprocess(emptyToUndefined, z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info')),
  FLY_API_TOKEN: optionalString,
  FLY_API_URL: z.preprocess(emptyToUndefined, z.url().default('https://api.machines.dev')),
  FLY_ORG: optionalString,
  // Fly's managed Prometheus (bandwidth metering): {url}/prometheus/{org}/api/v1/query.
  FLY_METRICS_URL: z.preprocess(emptyToUndefined, z.url().default('https://api.fly.io')),
  GITHUB_APP_ID: optionalString,
  GITHUB_APP_PRIVATE_KEY: optionalString,
  GITHUB_CLIENT_ID: optionalString,
  GITHUB_CLIENT_SECRET: optionalString,
  GITHUB_WEBHOOK_SECRET: optionalString,
  GITHUB_API_URL: z.preprocess(emptyToUndefined, z.url().default('https://api.github.com')),
  RHONE_BUILDER_ADDR: optionalString,
  RHONE_BUILDER_TLS_CA: optionalString,
  RHONE_BUILDER_TLS_CERT: optionalString,
  RHONE_BUILDER_TLS_KEY: optionalString,
  // Comma-separated prefixes of the images a build plan may name (backend/builder/image-allowlist.ts).
  RHONE_BUILD_IMAGE_ALLOWLIST: optionalString,
  // The artifact store on S3-compatible object storage; the names are the ones `fly storage create` (Tigris) sets.
  RHONE_ARTIFACTS_BUCKET: optionalString,
  RHONE_ARTIFACTS_PATH_STYLE: z.preprocess(emptyToUndefined, z.enum(['true', 'false']).default('false')),
  AWS_ENDPOINT_URL_S3: z.preprocess(emptyToUndefined, z.url().optional()),
  AWS_REGION: z.preprocess(emptyToUndefined, z.string().default('auto')),
  AWS_ACCESS_KEY_ID: optionalString,
  AWS_SECRET_ACCESS_KEY: optionalString,
  STRIPE_SECRET_KEY: optionalString,
  STRIPE_WEBHOOK_SECRET: optionalString,
  STRIPE_API_URL: z.preprocess(emptyToUndefined, z.url().default('https://api.stripe.com')),
  // Unauthenticated webhook bodies (GitHub, Stripe) being read at once, per api process.
  WEBHOOK_MAX_IN_FLIGHT: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1).max(1000).default(8)),
  WEBHOOK_MAX_IN_FLIGHT_PER_ADDRESS: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1).max(1000).default(2)),
  WEBHOOK_RATE_LIMIT_PER_MINUTE: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1).max(1_000_000).default(600)),
  // Size caps (backend/source/limits.ts): far above any real app, there to stop a repository or
  // an archive that unpacks to far more than it stores. Bytes and counts, plain integers.
  RHONE_MAX_SOURCE_BYTES: positiveInt(2 * GIB),
  RHONE_MAX_SOURCE_FILES: positiveInt(200_000),
  RHONE_MAX_ARTIFACT_BYTES: positiveInt(4 * GIB),
  RHONE_MAX_ARTIFACT_FILES: positiveInt(1_000_000),
});

/** Settings production cannot run without; local mode replaces each with a working local part. */
export const REQUIRED_IN_PRODUCTION = [
  'RHONE_PUBLIC_URL',
  'DATABASE_URL',
  'REDIS_URL',
  'RHONE_SESSION_SECRET',
  'RHONE_ENCRYPTION_KEYS',
  'FLY_API_TOKEN',
  'FLY_ORG',
  'GITHUB_APP_ID',
  'GITHUB_APP_PRIVATE_KEY',
  'GITHUB_CLIENT_ID',
  'GITHUB_CLIENT_SECRET',
  'GITHUB_WEBHOOK_SECRET',
  'STRIPE_SECRET_KEY',
  'STRIPE_WEBHOOK_SECRET',
  // Stages run on any worker machine: the source passes between them through the bucket.
  'RHONE_ARTIFACTS_BUCKET',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
] as const;

export interface EncryptionKey {
  id: string;
  key: Buffer;
}

export interface Config {
  mode: 'local' | 'production';
  isLocal: boolean;
  port: number;
  publicUrl: string;
  secureCookies: boolean;
  databaseUrl: string;
  redisUrl: string;
  dataDir: string;
  sessionSecret: string;
  /** The first key encrypts; every key decrypts what was written under its id. */
  encryptionKeys: EncryptionKey[];
  appsDomain: string;
  /** Whether `{slug}.<appsDomain>` reaches the app (the local router, or the production edge). */
  appsDomainRouted: boolean;
  routerPort: number;
  machinesPort: number;
  logLevel: string;
  /** metricsUrl: Fly's managed Prometheus, for bandwidth; https://api.fly.io when unset. */
  fly: { token?: string; apiUrl: string; org?: string; metricsUrl?: string };
  github: {
    appId?: string;
    privateKey?: string;
    clientId?: string;
    clientSecret?: string;
    webhookSecret?: string;
    apiUrl: string;
  };
  stripe: { secretKey?: string; webhookSecret?: string; apiUrl: string };
  /**
   * POST /webhooks/*: bodies read at once per api process (maxInFlight, and per source address), and
   * requests per source address per minute (shared by every api process, in Redis).
   */
  webhooks: { maxInFlight: number; maxInFlightPerAddress: number; perMinutePerAddress: number };
  /** The BuildKit builder (builder-image/) production builds run on, and its mutual-TLS material. */
  builder: {
    addr?: string;
    tls?: { caCert: string; cert: string; key: string };
    /** Prefixes of the images a build plan may name; default DEFAULT_BUILD_IMAGE_ALLOWLIST. */
    imageAllowlist?: readonly string[];
  };
  /** The S3-compatible artifact store; without it, the directory under dataDir (one machine only). */
  artifacts: { s3?: S3Settings };
  /** Caps on a deployment's checkout and on each artifact and unpacking (backend/source/limits.ts). */
  sizeLimits: SizeLimits;
  /** Names of settings local mode made up because they were not given. */
  generatedSecrets: string[];
}

export interface SizeLimits {
  sourceBytes: number;
  sourceFiles: number;
  artifactBytes: number;
  artifactFiles: number;
}

export interface S3Settings {
  bucket: string;
  /** AWS_ENDPOINT_URL_S3 (Tigris: https://fly.storage.tigris.dev); AWS's own S3 when unset. */
  endpoint?: string;
  region: string;
  /** Bucket in the path (MinIO, test fakes) instead of the host name (AWS, new Tigris buckets). */
  forcePathStyle: boolean;
  accessKeyId: string;
  secretAccessKey: string;
}

export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(`Rhone cannot start. Fix these settings:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** RHONE_ENCRYPTION_KEYS: "id:base64key,id2:base64key"; each key is 32 bytes (AES-256). */
export function parseEncryptionKeys(raw: string): EncryptionKey[] {
  const keys = raw
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const sep = part.indexOf(':');
      if (sep <= 0) throw new Error(`"${part.slice(0, 8)}…" is not of the form id:base64key`);
      const id = part.slice(0, sep);
      if (!/^[A-Za-z0-9_-]{1,32}$/.test(id)) throw new Error(`key id "${id}" must be 1-32 letters, digits, _ or -`);
      const key = Buffer.from(part.slice(sep + 1), 'base64');
      if (key.length !== 32) throw new Error(`key "${id}" must decode from base64 to 32 bytes, got ${key.length}`);
      return { id, key };
    });
  if (keys.length === 0) throw new Error('at least one key is needed');
  const ids = new Set(keys.map((k) => k.id));
  if (ids.size !== keys.length) throw new Error('key ids must be distinct');
  return keys;
}

interface DevSecrets {
  sessionSecret: string;
  encryptionKeys: string;
}

// Local mode keeps its made-up secrets on disk so sessions and encrypted env vars survive a restart.
function loadDevSecrets(dataDir: string): { secrets: DevSecrets; file: string } {
  const file = path.join(dataDir, 'dev-secrets.json');
  try {
    return { secrets: JSON.parse(readFileSync(file, 'utf8')) as DevSecrets, file };
  } catch {
    const secrets: DevSecrets = {
      sessionSecret: randomBytes(32).toString('base64url'),
      encryptionKeys: `dev1:${randomBytes(32).toString('base64')}`,
    };
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
    return { secrets, file };
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = schema.safeParse(env);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(`${issue.path.join('.')}: ${issue.message}`);
  }
  // Checked on the raw environment, so one bad value does not hide the rest of the list.
  if (emptyToUndefined(env.RHONE_MODE) === 'production') {
    for (const name of REQUIRED_IN_PRODUCTION) {
      if (emptyToUndefined(env[name]) === undefined) problems.push(`${name} is required in production`);
    }
  }

  // Given explicitly or not at all: the SDK's own search (files, instance metadata) is not used.
  if (emptyToUndefined(env.RHONE_MODE) !== 'production' && emptyToUndefined(env.RHONE_ARTIFACTS_BUCKET) !== undefined) {
    for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
      if (emptyToUndefined(env[name]) === undefined) problems.push(`${name} is required with RHONE_ARTIFACTS_BUCKET`);
    }
  }

  let encryptionKeys: EncryptionKey[] = [];
  const rawKeys = emptyToUndefined(env.RHONE_ENCRYPTION_KEYS);
  if (typeof rawKeys === 'string') {
    try {
      encryptionKeys = parseEncryptionKeys(rawKeys);
    } catch (err) {
      problems.push(`RHONE_ENCRYPTION_KEYS: ${(err as Error).message}`);
    }
  }
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const e = parsed.data;
  const isLocal = e.RHONE_MODE === 'local';

  const dataDir = path.resolve(e.RHONE_DATA_DIR);
  const generatedSecrets: string[] = [];
  let sessionSecret = e.RHONE_SESSION_SECRET ?? '';
  if (isLocal && (!e.RHONE_SESSION_SECRET || !e.RHONE_ENCRYPTION_KEYS)) {
    const { secrets } = loadDevSecrets(dataDir);
    if (!e.RHONE_SESSION_SECRET) {
      sessionSecret = secrets.sessionSecret;
      generatedSecrets.push('RHONE_SESSION_SECRET');
    }
    if (!e.RHONE_ENCRYPTION_KEYS) {
      encryptionKeys = parseEncryptionKeys(secrets.encryptionKeys);
      generatedSecrets.push('RHONE_ENCRYPTION_KEYS');
    }
  }

  const publicUrl = (e.RHONE_PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, '');
  return {
    mode: e.RHONE_MODE,
    isLocal,
    port: e.PORT,
    publicUrl,
    secureCookies: publicUrl.startsWith('https://'),
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    dataDir,
    sessionSecret,
    encryptionKeys,
    appsDomain: e.RHONE_APPS_DOMAIN ?? (isLocal ? 'localhost' : 'rhone.app'),
    // Locally the router serves {slug}.localhost; in production only once the operator set the
    // domain (and its wildcard certificate on Rhone's Fly app): backend/edge/replay.ts.
    appsDomainRouted: isLocal || e.RHONE_APPS_DOMAIN !== undefined,
    routerPort: e.RHONE_ROUTER_PORT,
    machinesPort: e.RHONE_MACHINES_PORT,
    logLevel: e.LOG_LEVEL,
    fly: { token: e.FLY_API_TOKEN, apiUrl: e.FLY_API_URL, org: e.FLY_ORG, metricsUrl: e.FLY_METRICS_URL },
    github: {
      appId: e.GITHUB_APP_ID,
      privateKey: e.GITHUB_APP_PRIVATE_KEY,
      clientId: e.GITHUB_CLIENT_ID,
      clientSecret: e.GITHUB_CLIENT_SECRET,
      webhookSecret: e.GITHUB_WEBHOOK_SECRET,
      apiUrl: e.GITHUB_API_URL,
    },
    stripe: { secretKey: e.STRIPE_SECRET_KEY, webhookSecret: e.STRIPE_WEBHOOK_SECRET, apiUrl: e.STRIPE_API_URL },
    webhooks: {
      maxInFlight: e.WEBHOOK_MAX_IN_FLIGHT,
      maxInFlightPerAddress: e.WEBHOOK_MAX_IN_FLIGHT_PER_ADDRESS,
      perMinutePerAddress: e.WEBHOOK_RATE_LIMIT_PER_MINUTE,
    },
    builder: {
      addr: e.RHONE_BUILDER_ADDR,
      tls:
        e.RHONE_BUILDER_TLS_CA && e.RHONE_BUILDER_TLS_CERT && e.RHONE_BUILDER_TLS_KEY
          ? { caCert: e.RHONE_BUILDER_TLS_CA, cert: e.RHONE_BUILDER_TLS_CERT, key: e.RHONE_BUILDER_TLS_KEY }
          : undefined,
      imageAllowlist: e.RHONE_BUILD_IMAGE_ALLOWLIST
        ? e.RHONE_BUILD_IMAGE_ALLOWLIST.split(',')
            .map((p) => p.trim())
            .filter(Boolean)
        : DEFAULT_BUILD_IMAGE_ALLOWLIST,
    },
    artifacts: {
      s3: e.RHONE_ARTIFACTS_BUCKET
        ? {
            bucket: e.RHONE_ARTIFACTS_BUCKET,
            endpoint: e.AWS_ENDPOINT_URL_S3,
            region: e.AWS_REGION,
            forcePathStyle: e.RHONE_ARTIFACTS_PATH_STYLE === 'true',
            accessKeyId: e.AWS_ACCESS_KEY_ID ?? '',
            secretAccessKey: e.AWS_SECRET_ACCESS_KEY ?? '',
          }
        : undefined,
    },
    sizeLimits: {
      sourceBytes: e.RHONE_MAX_SOURCE_BYTES,
      sourceFiles: e.RHONE_MAX_SOURCE_FILES,
      artifactBytes: e.RHONE_MAX_ARTIFACT_BYTES,
      artifactFiles: e.RHONE_MAX_ARTIFACT_FILES,
    },
    generatedSecrets,
  };
}

let cached: Config | undefined;

/** The process's configuration, parsed on first use. */
export function getConfig(): Config {
  cached ??= loadConfig();
  return cached;
}

/** What entry points print when the configuration is unusable. */
export function configOrExit(): Config {
  try {
    return getConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
}
