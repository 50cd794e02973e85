// Deployment snapshots reference their env by version: an unchanged env set is stored once however
// many deployments use it, a rollback deploys the version its target had, and key rotation reaches
// the versions too (a rollback after the old key is retired still deploys the env values it had).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { db } from '../backend/db.ts';
import { getConfig } from '../backend/config.ts';
import { putEnv, sealValue } from '../backend/commands/env.ts';
import { rollbackTo } from '../backend/commands/deployments.ts';
import { openSnapshotEnv, rotateSnapshotKeys, takeSnapshot, type ConfigSnapshot } from '../backend/deployments/snapshot.ts';
import { Deployment, Team, type App, type User } from '../backend/models/index.ts';
import type { Actor } from '../backend/middleware/auth.ts';
import { makeApp, makeUser } from './factories.ts';
import { testQueues } from './support/github-app.ts';
import { moveInlineEnv } from '../migrations/20261204000500_env-versions.ts';

const envVersions = async () => Number(((await db()('env_versions').count('* as n')) as { n: string }[])[0].n);

async function insertDeployment(app: App, number: number, snapshot: ConfigSnapshot, fields: Record<string, unknown> = {}): Promise<string> {
  const [row] = (await db()('deployments')
    .insert({
      appId: app.id,
      number,
      status: 'live',
      trigger: 'manual',
      commitSha: 'a'.repeat(40),
      image: `rhone-local/web:${number}`,
      configSnapshot: JSON.stringify(snapshot),
      ...fields,
    })
    .returning('id')) as { id: string }[];
  return row.id;
}

async function storedSnapshot(id: string): Promise<ConfigSnapshot> {
  const [row] = (await db()('deployments').where({ id }).select('configSnapshot')) as { configSnapshot: ConfigSnapshot }[];
  return row.configSnapshot;
}

describe('deployment env versions', () => {
  let ada: User;
  let team: Team;
  let app: App;
  let actor: Actor;
  const keys = () => getConfig().encryptionKeys;

  beforeEach(async () => {
    ada = await makeUser('ada');
    team = await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound();
    app = await makeApp(ada, team, 'web');
    actor = { user: ada, via: 'session' };
  });

  it('stores an unchanged env set once, however many deployments use it, and not inside the deployments', async () => {
    const big = 'x'.repeat(60 * 1024);
    await putEnv(db(), keys(), actor, team, app, { API_KEY: 'k-1', BLOB: big });
    const first = await insertDeployment(app, 1, await takeSnapshot(db(), app));
    const second = await insertDeployment(app, 2, await takeSnapshot(db(), app));
    assert.equal(await envVersions(), 1, 'one env version for two deployments with the same env');
    const [s1, s2] = [await storedSnapshot(first), await storedSnapshot(second)];
    assert.equal(s1.envVersionId, s2.envVersionId);
    assert.equal(s1.env, undefined, 'no ciphertexts copied into the deployment');
    assert.ok(JSON.stringify(s2).length < 2000, `the snapshot is small (${JSON.stringify(s2).length} chars)`);
    assert.deepEqual(await openSnapshotEnv(db(), keys(), app.id, s2), { API_KEY: 'k-1', BLOB: big });

    await putEnv(db(), keys(), actor, team, app, { API_KEY: 'k-2' });
    await insertDeployment(app, 3, await takeSnapshot(db(), app));
    assert.equal(await envVersions(), 2, 'a changed env is a new version');
  });

  it('a rollback deploys the env its target had, not the current one', async () => {
    await putEnv(db(), keys(), actor, team, app, { API_KEY: 'old' });
    const first = await insertDeployment(app, 1, await takeSnapshot(db(), app), { status: 'replaced' });
    await putEnv(db(), keys(), actor, team, app, { API_KEY: 'new', EXTRA: '1' });
    await insertDeployment(app, 2, await takeSnapshot(db(), app));
    const target = await Deployment.query(db()).findById(first).throwIfNotFound();
    const rolled = await rollbackTo(db(), testQueues(getConfig()), actor, app, target);
    assert.deepEqual(await openSnapshotEnv(db(), keys(), app.id, await storedSnapshot(rolled.id)), { API_KEY: 'old' });
    assert.equal(await envVersions(), 2, "the rollback reuses its target's env version");
  });

  it('still opens a snapshot written with its env inline (before env versions), and the migration moves such env out', async () => {
    const sealed = sealValue(keys(), app.id, 'API_KEY', 'inline-value');
    const inline = {
      ...(await takeSnapshot(db(), app)),
      envVersionId: undefined,
      env: [{ name: 'API_KEY', keyId: sealed.keyId, ciphertext: sealed.ciphertext.toString('base64') }],
    };
    const [one, two] = [await insertDeployment(app, 1, inline), await insertDeployment(app, 2, inline)];
    assert.deepEqual(await openSnapshotEnv(db(), keys(), app.id, await storedSnapshot(one)), { API_KEY: 'inline-value' });
    const before = await envVersions();
    await moveInlineEnv(db());
    assert.equal(await envVersions(), before + 1, 'two deployments with the same inline env share one version');
    for (const id of [one, two]) {
      const moved = await storedSnapshot(id);
      assert.equal(moved.env, undefined);
      assert.ok(moved.envVersionId);
      assert.deepEqual(await openSnapshotEnv(db(), keys(), app.id, moved), { API_KEY: 'inline-value' });
    }
  });
});

describe('snapshot key rotation', () => {
  it('re-encrypts snapshot env under the newest key; the values survive retiring the old key', async () => {
    const oldKey = { id: 'old', key: randomBytes(32) };
    const newKey = { id: 'new', key: randomBytes(32) };
    const ada = await makeUser('ada');
    const team = await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound();
    const app = await makeApp(ada, team, 'web');
    await putEnv(db(), [oldKey], { user: ada, via: 'session' }, team, app, { API_KEY: 'k-123', DB_URL: 'postgres://x' });
    const snapshot = await takeSnapshot(db(), app);
    const [row] = (await db()('deployments')
      .insert({ appId: app.id, number: 1, status: 'live', trigger: 'manual', configSnapshot: JSON.stringify(snapshot) })
      .returning('id')) as { id: string }[];
    // A snapshot from before env versions, its env inline, is rotated as well.
    const sealed = sealValue([oldKey], app.id, 'LEGACY', 'inline-secret');
    const legacy = { ...snapshot, envVersionId: undefined, env: [{ name: 'LEGACY', keyId: sealed.keyId, ciphertext: sealed.ciphertext.toString('base64') }] };
    const [old] = (await db()('deployments')
      .insert({ appId: app.id, number: 2, status: 'replaced', trigger: 'manual', configSnapshot: JSON.stringify(legacy) })
      .returning('id')) as { id: string }[];

    assert.equal(await rotateSnapshotKeys(db(), [newKey, oldKey]), 2);
    assert.equal(await rotateSnapshotKeys(db(), [newKey, oldKey]), 0, 'nothing left to do');
    const versions = (await db()('env_versions').select('vars')) as { vars: { keyId: string }[] }[];
    assert.deepEqual(
      versions.flatMap((v) => v.vars.map((e) => e.keyId)),
      ['new', 'new'],
    );
    const configSnapshot = (await db()('deployments').where({ id: row.id }).first('configSnapshot')).configSnapshot as ConfigSnapshot;
    assert.deepEqual(await openSnapshotEnv(db(), [newKey], app.id, configSnapshot), { API_KEY: 'k-123', DB_URL: 'postgres://x' });
    const legacyAfter = (await db()('deployments').where({ id: old.id }).first('configSnapshot')).configSnapshot as ConfigSnapshot;
    assert.deepEqual(await openSnapshotEnv(db(), [newKey], app.id, legacyAfter), { LEGACY: 'inline-secret' });
    const everything = JSON.stringify(await db()('env_versions').select('*')) + JSON.stringify(configSnapshot);
    assert.ok(!everything.includes('k-123'), 'still no plaintext stored');
  });
});
