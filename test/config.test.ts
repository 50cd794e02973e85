import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, REQUIRED_IN_PRODUCTION, loadConfig } from '../backend/config.ts';

const key = (fill: number) => Buffer.alloc(32, fill).toString('base64');

/** Every setting production needs, valid. */
function productionEnv(): NodeJS.ProcessEnv {
  return {
    RHONE_MODE: 'production',
    RHONE_PUBLIC_URL: 'https://rhone.example.com/',
    DATABASE_URL: 'postgres://rhone@db:5432/rhone',
    REDIS_URL: 'redis://redis:6379/0',
    RHONE_SESSION_SECRET: 's'.repeat(40),
    RHONE_ENCRYPTION_KEYS: `k2:${key(2)},k1:${key(1)}`,
    FLY_API_TOKEN: 'fly-token',
    FLY_ORG: 'rhone',
    GITHUB_APP_ID: '123',
    GITHUB_APP_PRIVATE_KEY: '-----BEGIN RSA PRIVATE KEY-----',
    GITHUB_CLIENT_ID: 'Iv1.abc',
    GITHUB_CLIENT_SECRET: 'gh-secret',
    GITHUB_WEBHOOK_SECRET: 'wh-secret',
    STRIPE_SECRET_KEY: 'sk_test_x',
    STRIPE_WEBHOOK_SECRET: 'whsec_x',
    RHONE_ARTIFACTS_BUCKET: 'rhone-artifacts',
    AWS_ENDPOINT_URL_S3: 'https://fly.storage.tigris.dev',
    AWS_ACCESS_KEY_ID: 'tid_abc',
    AWS_SECRET_ACCESS_KEY: 'tsec_abc',
  };
}

function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
    return err;
  }
  assert.fail('loadConfig accepted a bad configuration');
}

describe('loadConfig', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-config-'));
  });
  afterEach(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('runs in local mode with nothing set, with the documented defaults', () => {
    const c = loadConfig({ RHONE_DATA_DIR: dataDir });
    assert.equal(c.mode, 'local');
    assert.equal(c.isLocal, true);
    assert.equal(c.port, 3000);
    assert.equal(c.publicUrl, 'http://localhost:3000');
    assert.equal(c.secureCookies, false);
    assert.equal(c.databaseUrl, 'postgres://postgres@127.0.0.1:5432/rhone');
    assert.equal(c.redisUrl, 'redis://127.0.0.1:6379/0');
    assert.equal(c.appsDomain, 'localhost');
    assert.equal(c.routerPort, 8080);
    assert.equal(c.machinesPort, 4280);
    assert.deepEqual(c.sizeLimits, { sourceBytes: 2 * 1024 ** 3, sourceFiles: 200_000, artifactBytes: 4 * 1024 ** 3, artifactFiles: 1_000_000 });
    assert.equal(c.fly.apiUrl, 'https://api.machines.dev');
    assert.equal(c.github.apiUrl, 'https://api.github.com');
    assert.equal(c.stripe.apiUrl, 'https://api.stripe.com');
    assert.equal(c.dataDir, dataDir);
    // Empty strings count as unset, as they do in .env files and compose files.
    assert.equal(loadConfig({ RHONE_DATA_DIR: dataDir, PORT: '', RHONE_MODE: ' ' }).port, 3000);
  });

  it('accepts a complete production configuration', () => {
    const c = loadConfig(productionEnv());
    assert.equal(c.isLocal, false);
    assert.equal(c.publicUrl, 'https://rhone.example.com');
    assert.equal(c.secureCookies, true);
    assert.equal(c.appsDomain, 'rhone.app');
    assert.deepEqual(
      c.encryptionKeys.map((k) => [k.id, k.key.length]),
      [
        ['k2', 32],
        ['k1', 32],
      ],
    );
    assert.deepEqual(c.generatedSecrets, []);
    assert.equal(loadConfig({ ...productionEnv(), RHONE_APPS_DOMAIN: 'apps.example.com' }).appsDomain, 'apps.example.com');
  });

  it('refuses production with nothing set, listing every missing setting in one message', () => {
    const err = configError({ RHONE_MODE: 'production', RHONE_DATA_DIR: dataDir });
    for (const name of REQUIRED_IN_PRODUCTION) assert.match(err.message, new RegExp(`\\b${name} is required in production`));
    assert.equal(err.problems.length, REQUIRED_IN_PRODUCTION.length);
    assert.ok(REQUIRED_IN_PRODUCTION.length >= 14);
    // Each missing setting on its own, too.
    for (const name of REQUIRED_IN_PRODUCTION) {
      const env = productionEnv();
      delete env[name];
      assert.deepEqual(configError(env).problems, [`${name} is required in production`]);
    }
  });

  it('lists bad values together with missing ones, not one at a time', () => {
    const err = configError({ RHONE_MODE: 'production', PORT: 'eighty', RHONE_PUBLIC_URL: 'not a url', LOG_LEVEL: 'loud' });
    for (const name of ['PORT', 'RHONE_PUBLIC_URL', 'LOG_LEVEL', 'FLY_API_TOKEN', 'STRIPE_WEBHOOK_SECRET', 'RHONE_ENCRYPTION_KEYS']) {
      assert.match(err.message, new RegExp(name));
    }
  });

  it('explains bad RHONE_ENCRYPTION_KEYS', () => {
    const cases: [string, RegExp][] = [
      [`k1:${Buffer.alloc(16).toString('base64')}`, /"k1" must decode from base64 to 32 bytes, got 16/],
      [`k1:${key(1)},k1:${key(2)}`, /distinct/],
      [key(1), /id:base64key/],
      [`bad id!:${key(1)}`, /key id "bad id!"/],
      [' , ', /at least one key/],
    ];
    for (const [value, explanation] of cases) {
      const err = configError({ ...productionEnv(), RHONE_ENCRYPTION_KEYS: value });
      assert.equal(err.problems.length, 1, err.message);
      assert.match(err.problems[0], /^RHONE_ENCRYPTION_KEYS: /);
      assert.match(err.message, explanation);
      // Local mode does not make up keys over bad ones it was given.
      assert.match(configError({ RHONE_DATA_DIR: dataDir, RHONE_ENCRYPTION_KEYS: value }).message, explanation);
    }
    // The key material never appears in the explanation.
    assert.ok(!configError({ ...productionEnv(), RHONE_ENCRYPTION_KEYS: `k1:${key(9)},k1:${key(9)}` }).message.includes(key(9)));
  });

  it('refuses a short session secret', () => {
    assert.match(configError({ ...productionEnv(), RHONE_SESSION_SECRET: 'short' }).message, /RHONE_SESSION_SECRET: must be at least 32 characters/);
  });

  it('makes up development secrets in local mode, keeps them in the data dir, and reuses them', () => {
    const first = loadConfig({ RHONE_DATA_DIR: dataDir });
    assert.deepEqual(first.generatedSecrets.sort(), ['RHONE_ENCRYPTION_KEYS', 'RHONE_SESSION_SECRET']);
    assert.ok(first.sessionSecret.length >= 32);
    assert.equal(first.encryptionKeys.length, 1);
    assert.equal(first.encryptionKeys[0].key.length, 32);

    const file = path.join(dataDir, 'dev-secrets.json');
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(saved.sessionSecret, first.sessionSecret);
    assert.equal(statSync(file).mode & 0o077, 0, 'the secrets file is readable by others');

    const second = loadConfig({ RHONE_DATA_DIR: dataDir });
    assert.equal(second.sessionSecret, first.sessionSecret);
    assert.deepEqual(second.encryptionKeys, first.encryptionKeys);

    // Another data dir, other secrets.
    const elsewhere = mkdtempSync(path.join(os.tmpdir(), 'rhone-config-'));
    try {
      assert.notEqual(loadConfig({ RHONE_DATA_DIR: elsewhere }).sessionSecret, first.sessionSecret);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  it('uses given secrets in local mode instead of making them up', () => {
    const c = loadConfig({ RHONE_DATA_DIR: dataDir, RHONE_SESSION_SECRET: 'x'.repeat(32), RHONE_ENCRYPTION_KEYS: `mine:${key(3)}` });
    assert.deepEqual(c.generatedSecrets, []);
    assert.equal(c.sessionSecret, 'x'.repeat(32));
    assert.equal(c.encryptionKeys[0].id, 'mine');
    assert.throws(() => statSync(path.join(dataDir, 'dev-secrets.json')), /ENOENT/);
  });

  it('uses the S3 artifact store when a bucket is set, which production requires', () => {
    assert.deepEqual(loadConfig(productionEnv()).artifacts.s3, {
      bucket: 'rhone-artifacts',
      endpoint: 'https://fly.storage.tigris.dev',
      region: 'auto',
      forcePathStyle: false,
      accessKeyId: 'tid_abc',
      secretAccessKey: 'tsec_abc',
    });
    assert.ok(REQUIRED_IN_PRODUCTION.includes('RHONE_ARTIFACTS_BUCKET'));
    assert.equal(loadConfig({ RHONE_DATA_DIR: dataDir }).artifacts.s3, undefined, 'locally the directory store is the default');
    const local = loadConfig({
      RHONE_DATA_DIR: dataDir,
      RHONE_ARTIFACTS_BUCKET: 'b',
      AWS_ACCESS_KEY_ID: 'k',
      AWS_SECRET_ACCESS_KEY: 's',
      AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000',
      AWS_REGION: 'us-east-1',
      RHONE_ARTIFACTS_PATH_STYLE: 'true',
    });
    assert.deepEqual(local.artifacts.s3, {
      bucket: 'b',
      endpoint: 'http://127.0.0.1:9000',
      region: 'us-east-1',
      forcePathStyle: true,
      accessKeyId: 'k',
      secretAccessKey: 's',
    });
    // A bucket without its key pair is refused, the secret never echoed.
    assert.deepEqual(configError({ RHONE_DATA_DIR: dataDir, RHONE_ARTIFACTS_BUCKET: 'b', AWS_ACCESS_KEY_ID: 'k' }).problems, [
      'AWS_SECRET_ACCESS_KEY is required with RHONE_ARTIFACTS_BUCKET',
    ]);
    assert.match(configError({ ...productionEnv(), AWS_ENDPOINT_URL_S3: 'not a url' }).message, /AWS_ENDPOINT_URL_S3/);
    assert.ok(!configError({ ...productionEnv(), AWS_ENDPOINT_URL_S3: 'nope' }).message.includes('tsec_abc'));
  });

  it('defaults the apps domain to localhost locally and rhone.app in production', () => {
    assert.equal(loadConfig({ RHONE_DATA_DIR: dataDir }).appsDomain, 'localhost');
    assert.equal(loadConfig({ RHONE_DATA_DIR: dataDir, RHONE_APPS_DOMAIN: 'apps.test' }).appsDomain, 'apps.test');
    assert.equal(loadConfig(productionEnv()).appsDomain, 'rhone.app');
  });
});
