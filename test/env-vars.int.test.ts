import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { db } from '../backend/db.ts';
import type { EncryptionKey } from '../backend/config.ts';
import { openValue, rotateEnvKeys } from '../backend/commands/env.ts';
import { getConfig } from '../backend/config.ts';
import { App, AuditEvent, EnvVar, Team } from '../backend/models/index.ts';
import { addMember, makeApp, makeUser } from './factories.ts';
import { Client, signedIn, startTestServer, type TestServer } from './http.ts';
import { dumpDatabase } from './db-state.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const keyA: EncryptionKey = { id: 'a', key: Buffer.alloc(32, 0xa1) };
const keyB: EncryptionKey = { id: 'b', key: Buffer.alloc(32, 0xb2) };

type Item = { name: string; value: string | null; revealed: boolean };
const byName = (items: Item[]) => Object.fromEntries(items.map((i) => [i.name, i.value]));

async function rows(): Promise<EnvVar[]> {
  return EnvVar.query(db()).orderBy(['appId', 'name']);
}

describe('env vars', () => {
  let server: TestServer;
  let owner: Client;
  let admin: Client;
  let member: Client;

  /** Signs in an owner (ada), an admin (bob) and a member (carol) of team "ada", which has apps "web" and "api-svc". */
  async function setUp(url: string) {
    owner = await signedIn(url, 'ada');
    const team = await Team.query(db()).findOne({ slug: 'ada' }).throwIfNotFound();
    const ada = await makeUser('ada');
    await makeApp(ada, team, 'web');
    await makeApp(ada, team, 'api-svc');
    await addMember(team, await makeUser('bob'), 'admin');
    await addMember(team, await makeUser('carol'), 'member');
    admin = await signedIn(url, 'bob');
    member = await signedIn(url, 'carol');
  }

  describe('through the API', () => {
    before(async () => {
      server = await startTestServer();
    });
    after(async () => {
      await server.close();
    });
    beforeEach(async () => {
      await setUp(server.url);
    });

    it('sets and unsets many variables in one PUT', async () => {
      const first = await owner.put('/api/apps/web/env', { vars: { DATABASE_URL: 'postgres://db/x', API_KEY: 'k1', _DEBUG: '1' } });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assert.deepEqual(
        first.body.items.map((i: Item) => i.name),
        ['API_KEY', 'DATABASE_URL', '_DEBUG'],
      );

      const second = await admin.put('/api/apps/web/env', { vars: { _DEBUG: null, API_KEY: 'k2', NEW_ONE: '', NEVER_SET: null } });
      assert.equal(second.status, 200, JSON.stringify(second.body));
      assert.deepEqual(
        second.body.items.map((i: Item) => i.name),
        ['API_KEY', 'DATABASE_URL', 'NEW_ONE'],
      );

      const shown = await owner.get('/api/apps/web/env?reveal=1');
      assert.deepEqual(byName(shown.body.items), { API_KEY: 'k2', DATABASE_URL: 'postgres://db/x', NEW_ONE: '' });
      // The other app of the team is untouched.
      assert.deepEqual((await owner.get('/api/apps/api-svc/env')).body.items, []);

      const audit = await AuditEvent.query(db()).where({ action: 'env.updated' }).orderBy('id');
      assert.deepEqual(
        audit.map((e) => [e.actorLogin, e.data.set, e.data.unset]),
        [
          ['ada', ['DATABASE_URL', 'API_KEY', '_DEBUG'], []],
          ['bob', ['API_KEY', 'NEW_ONE'], ['_DEBUG', 'NEVER_SET']],
        ],
      );
    });

    it('masks values for everyone unless an admin or owner asks to reveal, which is audit-logged', async () => {
      await owner.put('/api/apps/web/env', { vars: { SECRET_TOKEN: 'tok-123456', PORT: '8080' } });
      for (const client of [owner, admin, member]) {
        for (const query of ['', '?reveal=0', '?reveal=false']) {
          const res = await client.get(`/api/apps/web/env${query}`);
          assert.equal(res.status, 200);
          assert.deepEqual(
            res.body.items.map((i: Item) => [i.name, i.value, i.revealed]),
            [
              ['PORT', null, false],
              ['SECRET_TOKEN', null, false],
            ],
          );
          assert.ok(!JSON.stringify(res.body).includes('tok-123456'));
        }
      }
      assert.equal(await AuditEvent.query(db()).where({ action: 'env.revealed' }).resultSize(), 0);

      for (const [client, login] of [
        [owner, 'ada'],
        [admin, 'bob'],
      ] as const) {
        const res = await client.get('/api/apps/web/env?reveal=1');
        assert.equal(res.status, 200);
        assert.deepEqual(
          res.body.items.map((i: Item) => [i.name, i.value, i.revealed]),
          [
            ['PORT', '8080', true],
            ['SECRET_TOKEN', 'tok-123456', true],
          ],
        );
        const event = await AuditEvent.query(db()).where({ action: 'env.revealed', actorLogin: login }).first();
        assert.deepEqual(event?.data, { slug: 'web', names: ['PORT', 'SECRET_TOKEN'] });
      }
      const trueSpelling = await admin.get('/api/apps/web/env?reveal=true');
      assert.equal(trueSpelling.body.items[1].value, 'tok-123456');

      const refused = await member.get('/api/apps/web/env?reveal=1');
      assert.equal(refused.status, 403);
      assert.equal(refused.body.error, 'forbidden');
      assert.ok(!JSON.stringify(refused.body).includes('tok-123456'));
      assert.equal(await AuditEvent.query(db()).where({ action: 'env.revealed', actorLogin: 'carol' }).resultSize(), 0);
      // A member may not write either; the value stays.
      assert.equal((await member.put('/api/apps/web/env', { vars: { SECRET_TOKEN: 'mine' } })).status, 403);
      assert.equal(byName((await owner.get('/api/apps/web/env?reveal=1')).body.items).SECRET_TOKEN, 'tok-123456');
    });

    it('never stores a plaintext value anywhere in the database', async () => {
      const secret = 'plaintext-canary-7f3a9c-do-not-store';
      const multibyte = 'clé-secrète-ünïcödé-canary';
      await owner.put('/api/apps/web/env', { vars: { CANARY: secret, CANARY_UTF8: multibyte } });
      await owner.put('/api/apps/api-svc/env', { vars: { SAME_VALUE: secret } });
      await owner.put('/api/apps/web/env', { vars: { CANARY: secret } }); // rewritten: a new row version
      await owner.get('/api/apps/web/env?reveal=1');

      const stored = await rows();
      assert.equal(stored.length, 3);
      for (const row of stored) {
        assert.ok(Buffer.isBuffer(row.ciphertext));
        assert.equal(row.keyId, 't1');
        for (const plain of [secret, multibyte]) {
          assert.equal(row.ciphertext.indexOf(Buffer.from(plain)), -1, `${row.name} holds plaintext`);
        }
      }
      // The same value in two places is two different ciphertexts (a fresh IV each time).
      const [a, b] = [stored.find((r) => r.name === 'CANARY')!, stored.find((r) => r.name === 'SAME_VALUE')!];
      assert.notDeepEqual(a.ciphertext, b.ciphertext);

      // Every table, every column: audit events, deployments, tokens... text and bytea (as hex).
      const dump = await dumpDatabase();
      assert.ok(dump.includes('CANARY'), 'the dump should at least hold the names');
      for (const plain of [secret, multibyte]) {
        assert.ok(!dump.includes(plain), 'plaintext found in the database');
        assert.ok(!dump.includes(Buffer.from(plain).toString('hex')), 'plaintext found as bytea in the database');
      }
    });

    it("caps the total size of an app's env vars (names and values) at 256 KB, and a refused PUT writes nothing", async () => {
      const kb = (n: number) => 'v'.repeat(n * 1024);
      const first = await owner.put('/api/apps/web/env', { vars: { ONE: kb(60), TWO: kb(60), THREE: kb(60) } });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const before = await dumpDatabase();
      // Each value is under the 64 KB per-value limit; together they are not under the app's.
      const over = await owner.put('/api/apps/web/env', { vars: { FOUR: kb(60), FIVE: kb(60) } });
      assert.equal(over.status, 400, JSON.stringify(over.body));
      assert.equal(over.body.error, 'validation_error');
      assert.match(over.body.message, /^body\.vars: an app's env vars may take at most 256 KB \(names and values\); this would make 300\.0 KB\./);
      assert.equal(await dumpDatabase(), before, 'nothing written');
      // Replacing a value counts its new size, not both; another app has its own budget.
      assert.equal((await owner.put('/api/apps/web/env', { vars: { ONE: kb(1), FOUR: kb(60) } })).status, 200);
      assert.equal((await owner.put('/api/apps/api-svc/env', { vars: { BIG: kb(60), BIGGER: kb(60) } })).status, 200);
    });

    it('two concurrent PUTs cannot both slip under the cap (the app row is locked for the check)', async () => {
      const kb = (n: number) => 'w'.repeat(n * 1024);
      const results = await Promise.all([
        owner.put('/api/apps/web/env', { vars: { A1: kb(60), A2: kb(60) } }),
        admin.put('/api/apps/web/env', { vars: { B1: kb(60), B2: kb(60), B3: kb(60) } }),
      ]);
      assert.deepEqual(results.map((r) => r.status).sort(), [200, 400]);
      const names = (await rows()).map((r) => r.name);
      assert.ok(['A1,A2', 'B1,B2,B3'].includes(names.join(',')), names.join(','));
    });

    it('binds each ciphertext to its app and name, so a copied value does not decrypt', async () => {
      await owner.put('/api/apps/web/env', { vars: { ONE: 'first', TWO: 'second' } });
      const [one, two] = await rows();
      assert.equal(openValue(getConfig().encryptionKeys, two), 'second');
      assert.throws(() => openValue(getConfig().encryptionKeys, { ...one, name: 'TWO' }), /failed authentication/);
      assert.throws(() => openValue(getConfig().encryptionKeys, { ...one, appId: crypto.randomUUID() }), /failed authentication/);
    });
  });

  describe('key rotation', () => {
    let serverA: TestServer;
    const values = { web: { ALPHA: 'a-value', BETA: 'β-value', GAMMA: 'x'.repeat(5000) }, 'api-svc': { ALPHA: 'other-app', DELTA: 'd' } };

    before(async () => {
      serverA = await startTestServer({ config: { encryptionKeys: [keyA] } });
    });
    after(async () => {
      await serverA.close();
    });
    beforeEach(async () => {
      await setUp(serverA.url);
      for (const [app, vars] of Object.entries(values)) {
        assert.equal((await owner.put(`/api/apps/${app}/env`, { vars })).status, 200);
      }
      assert.deepEqual([...new Set((await rows()).map((r) => r.keyId))], ['a']);
    });

    async function revealedWith(keys: EncryptionKey[]) {
      const s = await startTestServer({ config: { encryptionKeys: keys } });
      try {
        const shown: Record<string, Record<string, string | null>> = {};
        for (const app of Object.keys(values)) {
          const client = new Client(s.url);
          client.cookies = new Map(owner.cookies);
          const res = await client.get(`/api/apps/${app}/env?reveal=1`);
          assert.equal(res.status, 200, JSON.stringify(res.body));
          shown[app] = byName(res.body.items);
        }
        return shown;
      } finally {
        await s.close();
      }
    }

    it('re-encrypts every value under the newest key, readable with that key alone', async () => {
      assert.equal(await rotateEnvKeys(db(), [keyB, keyA], 2), 5); // small batches: the loop runs three times
      const after = await rows();
      assert.equal(after.length, 5);
      const slugOf = new Map((await App.query(db())).map((a) => [a.id, a.slug as keyof typeof values]));
      for (const row of after) {
        assert.equal(row.keyId, 'b');
        assert.equal(openValue([keyB], row), (values[slugOf.get(row.appId)!] as Record<string, string>)[row.name]);
        assert.throws(() => openValue([keyA], row), /no encryption key with id "b"/);
      }
      assert.deepEqual(await revealedWith([keyB]), values);
      // Running it again finds nothing to do.
      assert.equal(await rotateEnvKeys(db(), [keyB, keyA]), 0);
    });

    it('npm run rotate-key re-encrypts and prints how many values it changed', async () => {
      const keysEnv = [keyB, keyA].map((k) => `${k.id}:${k.key.toString('base64')}`).join(',');
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'backend/cli/rotate-key.ts'], {
        cwd: root,
        env: { ...process.env, RHONE_ENCRYPTION_KEYS: keysEnv, DATABASE_URL: process.env.DATABASE_URL },
        timeout: 20_000,
      });
      assert.match(stdout, /re-encrypted 5 env var values under key "b"; 0 remain under older keys/);
      assert.deepEqual([...new Set((await rows()).map((r) => r.keyId))], ['b']);
      assert.deepEqual(await revealedWith([keyB]), values);
    });
  });
});
