// What the dashboard's first page costs a browser: Debian's Chromium (playwright-core) loads it
// from the real api, and we add up the bytes of every response as sent (gzip where the api
// gzips). Two first pages: a new visitor's (sign-in) and a signed-in user's (the apps list).
// Goal: under 150 KB each. Builds the dashboard first if frontend/ changed.
import { benchEnvironment } from './env.ts';

benchEnvironment('bench-frontend', 12);

const { ensureFrontendBuilt } = await import('../backend/cli/frontend.ts');
const { configOrExit } = await import('../backend/config.ts');
const { closeDb, db, ensureDatabase, migrateLatest } = await import('../backend/db.ts');
const { closeRedis, redis } = await import('../backend/redis.ts');
const { logger } = await import('../backend/lib/logger.ts');
const { closeApp, createApp } = await import('../backend/app.ts');
const { launchBrowser } = await import('../test/support/browser.ts');

const GOAL_KB = 150;

await ensureFrontendBuilt();
const config = configOrExit();
await ensureDatabase(config.databaseUrl);
await migrateLatest(db());
await redis().flushdb();
const app = createApp({ config, knex: db(), redis: redis(), log: logger() });
const server = app.listen(0, '127.0.0.1');
await new Promise((r) => server.once('listening', r));
const base = `http://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`;

const browser = await launchBrowser();

async function firstPage(name: string, path: string, signIn: boolean) {
  const context = await browser.newContext();
  if (signIn) {
    const res = await context.request.post(`${base}/auth/dev`, { data: { login: 'bench' } });
    if (!res.ok()) throw new Error(`dev sign-in failed: ${res.status()}`);
  }
  const page = await context.newPage();
  const responses: Promise<{ url: string; bytes: number; encoding: string }>[] = [];
  page.on('requestfinished', (req) => {
    responses.push(
      (async () => {
        const sizes = await req.sizes();
        const res = await req.response();
        return {
          url: req.url().replace(base, ''),
          bytes: sizes.responseBodySize + sizes.responseHeadersSize,
          encoding: (await res?.headerValue('content-encoding')) ?? 'identity',
        };
      })(),
    );
  });
  await page.goto(`${base}${path}`, { waitUntil: 'networkidle' });
  const all = await Promise.all(responses);
  await context.close();
  const total = all.reduce((s, r) => s + r.bytes, 0);
  console.log(`\n${name} (${path}): ${all.length} requests, ${(total / 1024).toFixed(1)} KB transferred (headers included)`);
  for (const r of all.sort((a, b) => b.bytes - a.bytes)) console.log(`  ${(r.bytes / 1024).toFixed(1).padStart(7)} KB  ${r.encoding.padEnd(8)} ${r.url}`);
  console.log(`  goal < ${GOAL_KB} KB: ${total / 1024 < GOAL_KB ? 'met' : 'NOT met'} (${((total / 1024 / GOAL_KB) * 100).toFixed(0)}% of the budget)`);
  return total;
}

try {
  await firstPage('new visitor', '/', false);
  await firstPage('signed-in user', '/', true);
} finally {
  await browser.close();
  server.close();
  await Promise.allSettled([closeApp(app), closeDb(), closeRedis()]);
}
