// The build stage in production mode: the plan and the pinned source go to BuildKit through
// buildctl (a fake one here, speaking buildctl's rawjson progress), the image is pushed to Fly's
// registry under the app and deployment, and neither the Fly token nor the app's env values ever
// appear on the command line (the values reach the build as BuildKit secrets). The fake buildctl
// pushes to the fake Fly's registry, which, like Fly's, refuses a repository whose app does not
// exist: the stage must create the Fly app (in its own network) first.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { getConfig } from '../backend/config.ts';
import { db } from '../backend/db.ts';
import type { Deployment } from '../backend/models/index.ts';
import { LocalArtifactStore } from '../backend/source/artifacts.ts';
import { sealValue } from '../backend/commands/env.ts';
import type { ConfigSnapshot } from '../backend/deployments/snapshot.ts';
import { build, registryPassword } from '../jobs/processors/build.ts';
import type { StageContext } from '../jobs/stage.ts';
import { startFakeFlyMachines, type FakeFlyMachines } from './support/fake-fly-machines.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TOKEN = 'FlyV1 fm2_secret-token-value';
const APP_ID = '99999999-2222-4333-8444-555555555555';
/** The stored Fly app name: not `rhone-shop`, which on Fly may be anyone's. */
const FLY_APP = 'rhone-shop-k3x9q2m7';

function prodConfig(dataDir: string) {
  const base = getConfig();
  return {
    ...base,
    isLocal: false,
    mode: 'production' as const,
    dataDir,
    fly: { ...base.fly, token: TOKEN, apiUrl: fakeUrl(), org: 'rhone' },
    builder: { addr: 'tcp://builder.internal:1234' },
  };
}
let fakeUrl: () => string = () => {
  throw new Error('the fake Fly is not started');
};

/** A snapshot's env list, sealed with the test keys as takeSnapshot would store it. */
function sealedEnv(vars: Record<string, string>): ConfigSnapshot['env'] {
  return Object.entries(vars).map(([name, value]) => {
    const sealed = sealValue(getConfig().encryptionKeys, APP_ID, name, value);
    return { name, keyId: sealed.keyId, ciphertext: sealed.ciphertext.toString('base64') };
  });
}

describe('build stage in production mode (BuildKit)', () => {
  let bin: string;
  let savedPath: string | undefined;
  let fake: FakeFlyMachines;

  before(async () => {
    fake = await startFakeFlyMachines();
    fakeUrl = () => fake.url;
    bin = mkdtempSync(path.join(os.tmpdir(), 'rhone-fake-buildctl-'));
    writeFileSync(
      path.join(bin, 'buildctl'),
      `#!/bin/sh
printf '%s\\n' "$@" > '${bin}/argv'
: > '${bin}/secrets'
cp "$DOCKER_CONFIG/config.json" '${bin}/docker-config.json'
while [ $# -gt 0 ]; do
  case "$1" in
    --metadata-file) meta="$2"; shift ;;
    --local) case "$2" in context=*) ls "\${2#context=}" > '${bin}/context' ;; esac; shift ;;
    --secret) { printf '%s ' "\${2%%,*}"; cat "\${2##*src=}"; echo; } >> '${bin}/secrets'; shift ;;
  esac
  shift
done
cat '${path.join(root, 'test/fixtures/buildkit/railpack-node-success.rawjson')}' >&2
# The push: registry.fly.io/<app>:<tag> goes to the fake's registry, which refuses a missing app.
img=$(grep '^type=image,name=' '${bin}/argv'); img="\${img#type=image,name=registry.fly.io/}"; img="\${img%%,*}"
set -- "\${img%%:*}" "\${img#*:}"
# With the login buildctl was given (DOCKER_CONFIG), as the daemon asks the client for it.
auth=$(sed -n 's/.*"auth": *"\\([^"]*\\)".*/\\1/p' "$DOCKER_CONFIG/config.json" | head -n 1)
code=$(curl -s -o '${bin}/push-answer' -w '%{http_code}' -X PUT -H "authorization: Basic $auth" "${fake.url}/v2/$1/manifests/$2")
if [ "$code" != 201 ]; then
  echo "error: failed to push registry.fly.io/$1:$2: $code $(cat '${bin}/push-answer')" >&2
  exit 1
fi
printf '{"containerimage.digest":"sha256:%s"}' 3434343434343434343434343434343434343434343434343434343434343434 > "$meta"
`,
    );
    chmodSync(path.join(bin, 'buildctl'), 0o755);
    savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${savedPath}`;
  });
  after(async () => {
    process.env.PATH = savedPath;
    await fake.close();
  });

  it('builds on the builder, pushes to the Fly registry, and keeps the token off argv', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-prod-build-'));
    const config = prodConfig(dataDir);
    const src = mkdtempSync(path.join(os.tmpdir(), 'rhone-src-'));
    writeFileSync(path.join(src, 'package.json'), '{"name":"shop","scripts":{"start":"node server.js"}}');
    writeFileSync(path.join(src, 'server.js'), 'require("http").createServer((q, s) => s.end("ok")).listen(process.env.PORT)');
    const deploymentId = '11111111-2222-4333-8444-555555555555';
    await new LocalArtifactStore(path.join(dataDir, 'artifacts')).putDir(`deployments/${deploymentId}/source`, src);
    const lines: string[] = [];
    const redacted: string[] = [];
    const ctx = {
      deployment: { id: deploymentId, plan: { provider: 'node', deploy: { base: { image: 'x' }, startCommand: 'npm run start' } } } as unknown as Deployment,
      app: { id: APP_ID, flyAppName: FLY_APP },
      snapshot: { slug: 'shop', settings: { rootDirectory: '' }, env: sealedEnv({ DATABASE_URL: 'postgres://shop:db-password-42@db/shop' }) },
      signal: new AbortController().signal,
      log: (line: string) => lines.push(line),
      redact: (values: string[]) => redacted.push(...values),
      deps: { knex: db(), config, queues: { connection: {} }, log: pino({ level: 'silent' }) },
    } as unknown as StageContext;

    const result = (await build.run(ctx)) as { image: string };
    assert.equal(result.image, `registry.fly.io/${FLY_APP}:deploy-${deploymentId}@sha256:${'34'.repeat(32)}`);
    // The Fly app was created (waiting for it, as fly-go's CreateApp does), in its own network, before the push.
    // Then a deploy token for this one app (Fly: "deploy tokens are limited to a single
    // application"), short-lived, is what the build pushes with; never the org-wide token.
    assert.deepEqual(fake.fly.history, [`app.create ${FLY_APP} wait`, `app.deploy_token ${FLY_APP} 35m0s`, `registry.push ${FLY_APP}:deploy-${deploymentId}`]);
    assert.equal(fake.fly.apps.get(FLY_APP)?.network, `rhone-app-${APP_ID}`);
    const argv = readFileSync(path.join(bin, 'argv'), 'utf8');
    assert.match(argv, /^--addr\ntcp:\/\/builder\.internal:1234\nbuild\n/);
    assert.match(argv, new RegExp(`name=registry\\.fly\\.io/${FLY_APP}:deploy-`));
    // The build cache is the app's, by id: a new app that reuses a deleted app's slug starts cold.
    assert.match(argv, new RegExp(`\nbuild-arg:cache-key=${APP_ID}\n`));
    // The layer cache lives in the app's own registry repository, so it survives the builder's volume.
    assert.match(
      argv,
      new RegExp(
        `\n--export-cache\ntype=registry,ref=registry\\.fly\\.io/${FLY_APP}:buildcache,mode=max,image-manifest=true,oci-mediatypes=true,ignore-error=true\n`,
      ),
    );
    assert.match(argv, new RegExp(`\n--import-cache\ntype=registry,ref=registry\\.fly\\.io/${FLY_APP}:buildcache\n`));
    assert.ok(!argv.includes('secret-token-value'), 'the token is not on the command line');
    // The app's env var is a build secret: named on the command line, its value only in a file.
    assert.ok(!argv.includes('db-password-42'), 'env values are not on the command line');
    assert.equal(readFileSync(path.join(bin, 'secrets'), 'utf8'), 'id=DATABASE_URL postgres://shop:db-password-42@db/shop\n');
    assert.equal(redacted[0], 'postgres://shop:db-password-42@db/shop', 'the value is redacted from the build log');
    assert.deepEqual(
      redacted.slice(1),
      [...fake.fly.deployTokens.keys()].filter((t) => fake.fly.deployTokens.get(t)?.app === FLY_APP).map((t) => t.replace(/^FlyV1 /, '')),
      'so is the deploy token',
    );
    const auth = JSON.parse(readFileSync(path.join(bin, 'docker-config.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
    const login = Buffer.from(auth.auths['registry.fly.io'].auth, 'base64').toString();
    const [minted] = [...fake.fly.deployTokens.entries()].filter(([, t]) => t.app === FLY_APP).map(([token]) => token);
    assert.ok(minted, 'a deploy token was minted for the app');
    assert.equal(login, `x:${minted.replace(/^FlyV1 /, '')}`, "the registry login is the app's deploy token");
    assert.ok(!login.includes('secret-token-value'), 'not the org token');
    assert.ok(!lines.join('\n').includes(minted.replace(/^FlyV1 /, '')), 'the deploy token is not in the log');
    assert.deepEqual(
      readFileSync(path.join(bin, 'context'), 'utf8').trim().split('\n').sort(),
      ['package.json', 'server.js'],
      'the context is the source alone',
    );
    assert.ok(lines.length > 3, 'BuildKit progress became log lines');
    assert.ok(lines.some((l) => l.startsWith(`Pushed image registry.fly.io/${FLY_APP}:`)));
    assert.equal(registryPassword('Bearer abc'), 'abc');
  });

  it("refuses a push to an app that does not exist, as Fly's registry does", async () => {
    const basic = (password: string) => ({ authorization: `Basic ${Buffer.from(`x:${password}`).toString('base64')}` });
    // Without a login, Fly's registry answers 401; a deploy token of one app cannot push to another.
    assert.equal((await fetch(`${fake.url}/v2/rhone-nobody-00000000/manifests/deploy-1`, { method: 'PUT' })).status, 401);
    fake.fly.add({ name: 'rhone-mine-00000000' });
    fake.fly.add({ name: 'rhone-theirs-0000000' });
    const mint = await fetch(`${fake.url}/v1/apps/rhone-mine-00000000/deploy_token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ expiry: '10m0s' }),
    });
    const { token } = (await mint.json()) as { token: string };
    const push = (app: string) => fetch(`${fake.url}/v2/${app}/manifests/t1`, { method: 'PUT', headers: basic(token.replace(/^FlyV1 /, '')) });
    assert.equal((await push('rhone-theirs-0000000')).status, 403);
    assert.equal((await push('rhone-mine-00000000')).status, 201);
    // The expiry is a Go duration, as flyctl sends it (`fly tokens create deploy --expiry`).
    const bad = await fetch(`${fake.url}/v1/apps/rhone-mine-00000000/deploy_token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ expiry: 600 }),
    });
    assert.equal(bad.status, 400);
    const res = await fetch(`${fake.url}/v2/rhone-nobody-00000000/manifests/deploy-1`, { method: 'PUT', headers: basic('org-token') });
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { errors: [{ code: 'NAME_UNKNOWN', message: 'app repository not found' }] });
    // Nor does a machine run in an app that does not exist, or from an image never pushed.
    const machine = (image: string) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ config: { image } }) });
    assert.equal((await fetch(`${fake.url}/v1/apps/rhone-nobody-00000000/machines`, machine('registry.fly.io/rhone-nobody-00000000:deploy-1'))).status, 404);
    fake.fly.add({ name: 'rhone-empty-00000000' });
    assert.equal((await fetch(`${fake.url}/v1/apps/rhone-empty-00000000/machines`, machine('registry.fly.io/rhone-empty-00000000:deploy-1'))).status, 422);
  });

  it('fails without pushing when the Fly app name belongs to another app on Fly, and says what to do', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-prod-build-'));
    const deploymentId = '11111111-2222-4333-8444-777777777777';
    const src = mkdtempSync(path.join(os.tmpdir(), 'rhone-src-'));
    writeFileSync(path.join(src, 'index.html'), 'hi');
    await new LocalArtifactStore(path.join(dataDir, 'artifacts')).putDir(`deployments/${deploymentId}/source`, src);
    fake.fly.add({ name: 'rhone-taken-aaaaaaaa', network: 'someone-else' });
    const ctx = {
      deployment: { id: deploymentId, plan: { provider: 'node', deploy: { base: { image: 'x' }, startCommand: 'npm run start' } } } as unknown as Deployment,
      app: { id: APP_ID, flyAppName: 'rhone-taken-aaaaaaaa' },
      snapshot: { slug: 'taken', settings: { rootDirectory: '' }, env: [] },
      signal: new AbortController().signal,
      log: () => undefined,
      redact: () => undefined,
      deps: { knex: db(), config: prodConfig(dataDir), queues: { connection: {} }, log: pino({ level: 'silent' }) },
    } as unknown as StageContext;
    const pushesBefore = fake.fly.history.filter((h) => h.startsWith('registry.push')).length;
    await assert.rejects(build.run(ctx), /The Fly app name "rhone-taken-aaaaaaaa" is in use by an app that is not this one/);
    assert.equal(fake.fly.history.filter((h) => h.startsWith('registry.push')).length, pushesBefore, 'nothing was pushed');
  });

  for (const [image, why] of [
    [
      'registry.fly.io/rhone-other-aaaaaaaa:deploy-1',
      /^The build plan names the image "registry\.fly\.io\/rhone-other-aaaaaaaa:deploy-1" \(steps\[0\]\.inputs\[0\]\), another Fly app's image, which RHONE_BUILD_IMAGE_ALLOWLIST can never allow\./,
    ],
    [
      'quay.io/evil/miner:1',
      /^The build plan names the image "quay\.io\/evil\/miner:1" \(steps\[0\]\.inputs\[0\]\), which RHONE_BUILD_IMAGE_ALLOWLIST does not allow\./,
    ],
  ] as const) {
    it(`refuses a plan naming ${image} at once, before any token is minted or anything built`, async () => {
      const dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-prod-build-'));
      const deploymentId = '11111111-2222-4333-8444-888888888888';
      const src = mkdtempSync(path.join(os.tmpdir(), 'rhone-src-'));
      writeFileSync(path.join(src, 'index.html'), 'hi');
      await new LocalArtifactStore(path.join(dataDir, 'artifacts')).putDir(`deployments/${deploymentId}/source`, src);
      const plan = {
        provider: 'node',
        steps: [{ name: 'install', inputs: [{ image }], commands: [{ cmd: 'true' }] }],
        deploy: { base: { image: 'ghcr.io/railwayapp/railpack-runtime:mise-2026.8.6' }, startCommand: 'npm run start' },
      };
      const ctx = {
        deployment: { id: deploymentId, plan } as unknown as Deployment,
        app: { id: APP_ID, flyAppName: FLY_APP },
        snapshot: { slug: 'shop', settings: { rootDirectory: '' }, env: [] },
        signal: new AbortController().signal,
        log: () => undefined,
        redact: () => undefined,
        deps: { knex: db(), config: prodConfig(dataDir), queues: { connection: {} }, log: pino({ level: 'silent' }) },
      } as unknown as StageContext;
      const before = fake.fly.history.length;
      const err = await build.run(ctx).catch((e: unknown) => e);
      assert.ok(err instanceof Error, String(err));
      assert.match(err.message, why);
      assert.equal((err as { permanent?: boolean }).permanent, true, 'a permanent failure: retrying cannot help');
      assert.deepEqual(fake.fly.history.slice(before), [], 'no app, token or push');
    });
  }

  it('says which settings a production build needs when the builder is not configured', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-prod-build-'));
    const config = { ...getConfig(), isLocal: false, dataDir, fly: { ...getConfig().fly, token: TOKEN }, builder: {} };
    const deploymentId = '11111111-2222-4333-8444-666666666666';
    const src = mkdtempSync(path.join(os.tmpdir(), 'rhone-src-'));
    writeFileSync(path.join(src, 'index.html'), 'hi');
    await new LocalArtifactStore(path.join(dataDir, 'artifacts')).putDir(`deployments/${deploymentId}/source`, src);
    const ctx = {
      deployment: { id: deploymentId, plan: { deploy: {} } } as unknown as Deployment,
      app: { id: APP_ID },
      snapshot: { slug: 'shop', settings: { rootDirectory: '' }, env: [] },
      signal: new AbortController().signal,
      log: () => undefined,
      redact: () => undefined,
      deps: { knex: db(), config, queues: { connection: {} }, log: pino({ level: 'silent' }) },
    } as unknown as StageContext;
    await assert.rejects(build.run(ctx), /set RHONE_BUILDER_ADDR/);
  });
});
