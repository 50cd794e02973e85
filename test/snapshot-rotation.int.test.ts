// Key rotation reaches deployment snapshots too: a rollback after the old key is retired still
// deploys the env values it had.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { db } from '../backend/db.ts';
import { putEnv } from '../backend/commands/env.ts';
import { openSnapshotEnv, rotateSnapshotKeys, takeSnapshot, type ConfigSnapshot } from '../backend/deployments/snapshot.ts';
import { Team } from '../backend/models/index.ts';
import { makeApp, makeUser } from './factories.ts';

describe('snapshot key rotation', () => {
  it('re-encrypts snapshot env under the newest key; the values survive retiring the old key', async () => {
    const oldKey = { id: 'old', key: randomBytes(32) };
    const newKey = { id: 'new', key: randomBytes(32) };
    const ada = await makeUser('ada');
    const team = await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound();
    const app = await makeApp(ada, team, 'web');
    await putEnv(db(), [oldKey], { user: ada, via: 'session' }, team, app, { API_KEY: 'k-123', DB_URL: 'postgres://x' });
    const snapshot = await takeSnapshot(db(), app);
    const [row] = (await db()('deployments').insert({ appId: app.id, number: 1, status: 'live', trigger: 'manual', configSnapshot: JSON.stringify(snapshot) }).returning('id')) as { id: string }[];

    assert.equal(await rotateSnapshotKeys(db(), [newKey, oldKey]), 1);
    assert.equal(await rotateSnapshotKeys(db(), [newKey, oldKey]), 0, 'nothing left to do');
    const [{ configSnapshot }] = (await db()('deployments').where({ id: row.id }).select('configSnapshot')) as { configSnapshot: ConfigSnapshot }[];
    assert.deepEqual(configSnapshot.env.map((e) => e.keyId), ['new', 'new']);
    assert.deepEqual(openSnapshotEnv([newKey], app.id, configSnapshot), { API_KEY: 'k-123', DB_URL: 'postgres://x' });
    assert.ok(!JSON.stringify(configSnapshot).includes('k-123'), 'still no plaintext in the snapshot');
  });
});
