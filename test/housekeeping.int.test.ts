import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Job, Worker } from 'bullmq';
import { pino } from 'pino';
import { db } from '../backend/db.ts';
import { getConfig } from '../backend/config.ts';
import { sha256 } from '../backend/lib/crypto.ts';
import { Team } from '../backend/models/index.ts';
import { housekeeping, pruneDeploymentFiles, REVOKED_TOKEN_RETENTION_DAYS, WEBHOOK_DELIVERY_RETENTION_DAYS } from '../jobs/processors/housekeeping.ts';
import { LocalArtifactStore } from '../backend/source/artifacts.ts';
import { enqueue } from '../jobs/queues.ts';
import { startWorkers } from '../jobs/worker.ts';
import { makeApp, makeUser } from './factories.ts';

const DAY = 86_400_000;
const ago = (days: number) => new Date(Date.now() - days * DAY);

/** A row of each kind on either side of each cut-off; the names say which should survive. */
async function seed() {
  const ada = await makeUser('ada');
  const team = await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound();
  await db()('invitations').insert([
    { teamId: team.id, login: 'expired-long-ago', role: 'member', expiresAt: ago(30) },
    { teamId: team.id, login: 'expired-just-now', role: 'member', expiresAt: new Date(Date.now() - 1000) },
    { teamId: team.id, login: 'open', role: 'member', expiresAt: new Date(Date.now() + DAY) },
  ]);
  await db()('webhook_deliveries').insert([
    {
      provider: 'github',
      deliveryId: 'processed-old',
      event: 'push',
      receivedAt: ago(WEBHOOK_DELIVERY_RETENTION_DAYS + 1),
      processedAt: ago(WEBHOOK_DELIVERY_RETENTION_DAYS + 1),
    },
    { provider: 'stripe', deliveryId: 'processed-old-stripe', event: 'invoice.paid', receivedAt: ago(90), processedAt: ago(90) },
    {
      provider: 'github',
      deliveryId: 'processed-recent',
      event: 'push',
      receivedAt: ago(WEBHOOK_DELIVERY_RETENTION_DAYS - 1),
      processedAt: ago(WEBHOOK_DELIVERY_RETENTION_DAYS - 1),
    },
    { provider: 'github', deliveryId: 'unprocessed-old', event: 'push', receivedAt: ago(60), processedAt: null },
  ]);
  const token = (name: string, revokedAt: Date | null) => ({ userId: ada.id, name, tokenHash: sha256(name), prefix: 'rhone_xxxxxx', revokedAt });
  await db()('api_tokens').insert([
    token('revoked-long-ago', ago(REVOKED_TOKEN_RETENTION_DAYS + 1)),
    token('revoked-recently', ago(REVOKED_TOKEN_RETENTION_DAYS - 1)),
    token('active', null),
  ]);
  await db()('sessions').insert([
    { userId: ada.id, expiresAt: ago(1) },
    { userId: ada.id, expiresAt: new Date(Date.now() + DAY), revokedAt: ago(2) },
    { userId: ada.id, expiresAt: new Date(Date.now() + DAY), revokedAt: new Date() },
  ]);
}

async function survivors() {
  return {
    invitations: (await db()('invitations').orderBy('login').pluck('login')) as string[],
    deliveries: (await db()('webhook_deliveries').orderBy('deliveryId').select('deliveryId')).map((r: { deliveryId: string }) => r.deliveryId),
    tokens: (await db()('api_tokens').orderBy('name').pluck('name')) as string[],
    sessions: Number((await db()('sessions').count<{ count: string }[]>('* as count'))[0].count),
  };
}

const KEPT = {
  invitations: ['open'],
  deliveries: ['processed-recent', 'unprocessed-old'],
  tokens: ['active', 'revoked-recently'],
  // The session revoked moments ago stays a day; the expired and long-revoked ones go.
  sessions: 1,
};

describe('housekeeping', () => {
  it('deletes expired invitations, old processed webhook deliveries and long-revoked tokens, and keeps the rest', async () => {
    await seed();
    const result = await housekeeping(db());
    assert.deepEqual(result, { expiredInvitations: 2, oldWebhookDeliveries: 2, revokedTokens: 1, endedSessions: 2 });
    assert.deepEqual(await survivors(), KEPT);
    // Nothing left to do the second time.
    assert.deepEqual(await housekeeping(db()), { expiredInvitations: 0, oldWebhookDeliveries: 0, revokedTokens: 0, endedSessions: 0 });
    assert.deepEqual(await survivors(), KEPT);
  });

  it('runs as a job on a real BullMQ worker', async () => {
    await seed();
    const connection = { url: getConfig().redisUrl, maxRetriesPerRequest: null };
    const prefix = `test-${randomUUID()}`;
    const workers: Worker[] = startWorkers({ connection, prefix, knex: db(), log: pino({ level: 'silent' }) });
    try {
      const worker = workers.find((w) => w.name === 'housekeeping');
      assert.ok(worker, `no housekeeping worker among ${workers.map((w) => w.name).join(', ')}`);
      const done = new Promise<unknown>((resolve, reject) => {
        worker.on('completed', (_job: Job, result: unknown) => resolve(result));
        worker.on('failed', (_job: Job | undefined, err: Error) => reject(err));
      });
      const job = await enqueue({ connection, prefix }, 'housekeeping', {});
      assert.ok(job.id);
      const result = await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error('the job did not finish in 10 s')), 10_000))]);
      assert.deepEqual(result, { expiredInvitations: 2, oldWebhookDeliveries: 2, revokedTokens: 1, endedSessions: 2, prunedSources: 0, removedWorkDirs: 0 });
      assert.deepEqual(await survivors(), KEPT);
      await assert.rejects(enqueue({ connection, prefix }, 'housekeeping', { extra: true } as never), /extra/, 'payloads are validated');
    } finally {
      await Promise.all(workers.map((w) => w.close()));
    }
  });

  it('removes the sources of deployments finished over an hour ago and the scratch directories of dead workers, nothing else', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'rhone-housekeeping-'));
    const store = new LocalArtifactStore(path.join(dataDir, 'artifacts'));
    const ada = await makeUser('ada');
    const team = await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound();
    const app = await makeApp(ada, team, 'web');
    const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000);
    const deployments: Record<string, { status: string; finishedAt: Date | null }> = {
      'live-2h-ago': { status: 'live', finishedAt: hoursAgo(2) },
      'failed-3d-ago': { status: 'failed', finishedAt: hoursAgo(72) },
      'canceled-10m-ago': { status: 'canceled', finishedAt: hoursAgo(1 / 6) },
      building: { status: 'building', finishedAt: null },
    };
    const ids: Record<string, string> = {};
    const src = await mkdtemp(path.join(os.tmpdir(), 'rhone-src-'));
    await writeFile(path.join(src, 'index.js'), 'ok');
    let number = 0;
    for (const [name, d] of Object.entries(deployments)) {
      const [row] = await db()('deployments')
        .insert({
          appId: app.id,
          number: ++number,
          status: d.status,
          trigger: 'manual',
          finishedAt: d.finishedAt,
          configSnapshot: JSON.stringify({}),
          triggeredBy: ada.id,
        })
        .returning('id');
      ids[name] = row.id;
      await store.putDir(`deployments/${row.id}/source`, src);
    }
    const oldWork = path.join(dataDir, 'work-build-dead');
    const newWork = path.join(dataDir, 'work-build-running');
    await mkdir(oldWork);
    await mkdir(newWork);
    await utimes(oldWork, hoursAgo(30), hoursAgo(30));

    assert.deepEqual(await pruneDeploymentFiles(db(), store, dataDir), { prunedSources: 2, removedWorkDirs: 1 });
    const kept = async (name: string) => store.has(`deployments/${ids[name]}/source`);
    assert.deepEqual(await Promise.all(Object.keys(deployments).map(async (n) => [n, await kept(n)])), [
      ['live-2h-ago', false],
      ['failed-3d-ago', false],
      ['canceled-10m-ago', true],
      ['building', true],
    ]);
    assert.equal(existsSync(oldWork), false);
    assert.equal(existsSync(newWork), true);
    // Idempotent: nothing more to do.
    assert.deepEqual(await pruneDeploymentFiles(db(), store, dataDir), { prunedSources: 0, removedWorkDirs: 0 });
  });
});
