// Settings for the test run, set before anything parses the configuration. Tests use their own
// database and their own Redis database, so a developer's local Rhone is never touched.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.env.RHONE_MODE = 'local';
process.env.DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/rhone_test';
process.env.REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/15';
process.env.RHONE_DATA_DIR = mkdtempSync(path.join(os.tmpdir(), 'rhone-test-'));
process.env.RHONE_SESSION_SECRET = 'test-session-secret-that-is-long-enough-0123456789';
process.env.RHONE_ENCRYPTION_KEYS = `t1:${Buffer.alloc(32, 7).toString('base64')}`;
process.env.LOG_LEVEL = process.env.TEST_LOG_LEVEL ?? 'silent';
process.env.PORT = '0';
