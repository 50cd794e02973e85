// Tests never reach a Postgres database or Redis database that the test settings did not name
// (TEST_DATABASE_URL / TEST_REDIS_URL): another Rhone on the machine must not break them, nor be
// touched by them.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { getConfig } from '../backend/config.ts';
import { testDatabaseName, testDatabaseUrl, testRedisUrl } from './support/rhone-process.ts';

const root = path.resolve(import.meta.dirname);
// env.ts holds the defaults of the test settings; config.test.ts parses literal settings.
const ALLOWED = new Set(['env.ts', 'config.test.ts', 'test-isolation.test.ts']);

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const file = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'fixtures' ? [] : testFiles(file);
    return e.name.endsWith('.ts') ? [file] : [];
  });
}

describe('test isolation', () => {
  it('no test hard-codes a Redis database or a Postgres server', () => {
    const offenders = testFiles(root)
      .filter((f) => !ALLOWED.has(path.relative(root, f)))
      .flatMap((f) =>
        readFileSync(f, 'utf8')
          .split('\n')
          .map((line, i) => ({ line, where: `${path.relative(root, f)}:${i + 1}` }))
          .filter(({ line }) => /redis:\/\/[^'"`\s]*:\d+\/\d+|postgres(ql)?:\/\/[^'"`\s]*@127\.0\.0\.1:5432/.test(line))
          .map(({ where, line }) => `${where}: ${line.trim()}`),
      );
    assert.deepEqual(offenders, []);
  });

  it('derives the databases of the processes it starts from the test settings', () => {
    const { databaseUrl, redisUrl } = getConfig();
    const db = new URL(databaseUrl);
    assert.equal(testDatabaseName(), db.pathname.slice(1));
    const other = new URL(testDatabaseUrl('other_db'));
    assert.equal(other.host, db.host);
    assert.equal(other.username, db.username);
    assert.equal(other.pathname, '/other_db');
    assert.equal(testRedisUrl(), new URL(redisUrl).toString());
    const n = Number(new URL(redisUrl).pathname.slice(1) || '0');
    const shifted = new URL(testRedisUrl(8));
    assert.equal(shifted.host, new URL(redisUrl).host);
    assert.equal(shifted.pathname, `/${(n + 8) % 16}`);
  });
});
