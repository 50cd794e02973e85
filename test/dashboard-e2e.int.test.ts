// The dashboard in a real browser (Debian's Chromium through playwright-core) against the real
// `npm start`: api, worker, scheduler and the local runtime, each its own process. A newcomer's
// whole path: sign in, create an app from examples/hello-node, deploy, watch the log reach live,
// open the app; then reload during a build (no gap, no repeated line), cancel, and roll back.
import assert from 'node:assert/strict';
import path from 'node:path';
import pg from 'pg';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { TestRepo } from './support/git-repo.ts';
import { get } from './support/load.ts';
import { dropDatabase, flushRedis, startRhone, testDatabaseName, testDatabaseUrl, testRedisUrl, type RunningRhone } from './support/rhone-process.ts';
import { launchBrowser, openPage, screenshot, SCREENSHOT_DIR, type WatchedPage } from './support/browser.ts';

// npm start's own database, named after the test database (so two test runs don't share it), and
// its own Redis database next to the test's (npm start runs across tests, and the root hooks
// empty the test's Redis database before each one).
const DB = `${testDatabaseName()}_e2e`;
const REDIS = testRedisUrl(8);
const TICKS = 30;

/** hello-node whose build prints numbered lines slowly, so a test can act during the build. */
function slowBuildRepo(release: string, tickMs: number): TestRepo {
  const repo = new TestRepo(path.resolve(import.meta.dirname, '../examples/hello-node'));
  const pkg = {
    name: 'hello-node',
    version: '1.0.0',
    private: true,
    type: 'module',
    scripts: {
      build: `node -e "let i=0;const t=setInterval(()=>{console.log('tick '+(++i)+' of ${TICKS}');if(i===${TICKS})clearInterval(t)},${tickMs})"`,
      // The page shows the RELEASE file of the source (not Rhone's deployment number), so a
      // rollback is seen to serve the old build.
      start: 'RHONE_RELEASE= node server.js',
    },
  };
  repo.write('package.json', JSON.stringify(pkg, null, 2)).write('RELEASE', release);
  repo.commit(`release ${release}`);
  return repo;
}

async function statusOf(page: Page): Promise<string> {
  return (await page.locator('h1 [data-test=status]').textContent())?.trim() ?? '';
}

async function waitForStatus(page: Page, wanted: string[], timeoutMs = 90_000): Promise<string> {
  await page.waitForFunction((w) => w.includes(document.querySelector('h1 [data-test=status]')?.textContent?.trim() ?? ''), wanted, {
    timeout: timeoutMs,
    polling: 100,
  });
  return statusOf(page);
}

/** The log lines the viewer shows for a search (the viewer renders only rows in view; a search keeps them few). */
async function searchedLines(page: Page, query: string): Promise<string[]> {
  await page.fill('[data-test=log-search]', query);
  await page.waitForTimeout(100);
  const lines = await page.$$eval('[data-test=log] .logline .text', (els) => els.map((e) => e.textContent ?? ''));
  // The build step's own command line also contains the words; only the printed lines count.
  return lines.filter((l) => /^tick \d+ of/.test(l));
}

describe('dashboard in a browser', function () {
  this.timeout(300_000);
  let rhone: RunningRhone;
  let browser: Browser;
  let context: BrowserContext;
  let tab: WatchedPage;
  const shots: string[] = [];
  const servedRelease = () => get(`http://127.0.0.1:${rhone.routerPort}`, `hello.localhost:${rhone.routerPort}`, '/release');

  before(async () => {
    await dropDatabase(DB);
    await flushRedis(REDIS);
    rhone = await startRhone({ dbName: DB, redisUrl: REDIS });
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    tab = await openPage(context);
  });

  after(async () => {
    await browser?.close();
    await rhone?.stop();
    await dropDatabase(DB);
    if (shots.length) console.log(`      screenshots: ${SCREENSHOT_DIR}`);
  });

  afterEach(function () {
    // No console errors on any page, whatever the test did.
    const problems = tab.problems.splice(0);
    if (this.currentTest?.state === 'passed') assert.deepEqual(problems, [], 'the browser reported errors');
  });

  it('signs in, creates an app from examples/hello-node, deploys it, follows the log to live and opens the app', async () => {
    const { page } = tab;
    await page.goto(rhone.url);
    await page.waitForSelector('[data-test=login-input]');
    shots.push(await screenshot(page, '01-sign-in'));
    await page.fill('[data-test=login-input]', 'ada');
    await page.click('[data-test=login-submit]');
    await page.waitForURL(/\/teams\/ada$/);
    await page.waitForSelector('text=No apps yet');
    shots.push(await screenshot(page, '02-apps-empty'));

    const repo = slowBuildRepo('v1', 20);
    await page.click('[data-test=new-app]');
    await page.fill('[data-test=app-name]', 'Hello Node');
    assert.equal(await page.inputValue('[data-test=app-slug]'), 'hello-node', 'the slug follows the name');
    // Live validation: a bad slug is flagged before anything is sent.
    await page.fill('[data-test=app-slug]', 'Bad Slug');
    await page.waitForSelector('.field.invalid >> text=use lowercase letters');
    await page.fill('[data-test=app-slug]', 'hello');
    await page.click('[data-test=source-git]');
    await page.fill('[data-test=app-url]', repo.url);
    shots.push(await screenshot(page, '03-create-app'));
    await page.click('[data-test=create-app-submit]');

    await page.waitForURL(/\/deployments\//);
    assert.equal(
      await waitForStatus(page, ['live', 'failed'], 120_000),
      'live',
      (await page
        .locator('[data-test=reason]')
        .textContent()
        .catch(() => '')) ?? '',
    );
    const ticks = await searchedLines(page, 'tick ');
    assert.deepEqual(
      ticks,
      Array.from({ length: TICKS }, (_, i) => `tick ${i + 1} of ${TICKS}`),
    );
    await page.fill('[data-test=log-search]', '');
    for (const stage of ['clone', 'analyze', 'build', 'deploy']) {
      assert.equal(await page.getAttribute(`[data-test=stage-${stage}]`, 'data-state'), 'done', `${stage} is done`);
    }
    await page.waitForSelector('[data-test=plan] >> text=node');
    shots.push(await screenshot(page, '04-deployment-live'));

    // The app answers at its URL, in the same browser.
    const url = await page.getAttribute('[data-test=deployment-live-url]', 'href');
    assert.equal(url, `http://hello.localhost:${rhone.routerPort}`);
    const appTab = await context.newPage();
    const res = await appTab.goto(url!);
    assert.equal(res?.status(), 200);
    assert.match(await appTab.content(), /v1/);
    await appTab.close();

    // The overview shows the release and its machine.
    await page.goto(`${rhone.url}/apps/hello`);
    await page.waitForSelector('[data-test=instances] >> text=started');
    shots.push(await screenshot(page, '05-app-overview'));
    await page.goto(`${rhone.url}/teams/ada`);
    await page.waitForSelector('[data-test=app-row-hello] >> text=live');
    shots.push(await screenshot(page, '06-apps-list'));
  });

  it('reloading the deployment page during a build continues the log with no gap and no repeated line', async () => {
    const { page } = tab;
    const repo = slowBuildRepo('v2', 150);
    await page.goto(`${rhone.url}/apps/hello/settings`);
    // The app now deploys from a repository whose build takes a few seconds.
    const res = await page.evaluate(async (u) => {
      const csrf = document.cookie
        .split('; ')
        .find((c) => c.startsWith('rhone_csrf='))!
        .split('=')[1];
      const r = await fetch('/api/apps/hello', {
        method: 'PATCH',
        headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
        body: JSON.stringify({ source: { type: 'git', url: u, branch: 'main' } }),
      });
      return r.status;
    }, repo.url);
    assert.equal(res, 200);
    await page.goto(`${rhone.url}/apps/hello`);
    await page.click('[data-test=deploy]');
    await page.waitForURL(/\/deployments\//);
    // Wait until the build has printed some ticks, then reload in the middle of it.
    await page.waitForSelector('[data-test=log] >> text=tick 5 of', { timeout: 60_000 });
    shots.push(await screenshot(page, '07-deployment-building'));
    await page.reload();
    await page.waitForSelector('[data-test=log] >> text=tick 8 of', { timeout: 60_000 });
    assert.equal(await waitForStatus(page, ['live', 'failed']), 'live');
    const ticks = await searchedLines(page, 'tick ');
    assert.deepEqual(
      ticks,
      Array.from({ length: TICKS }, (_, i) => `tick ${i + 1} of ${TICKS}`),
    );
    assert.match((await servedRelease()).body, /"v2"/, 'the new source is what is served');
  });

  it('cancels a deploy during its build; the running release keeps serving', async () => {
    const { page } = tab;
    await page.goto(`${rhone.url}/apps/hello`);
    await page.click('[data-test=deploy]');
    await page.waitForURL(/\/deployments\//);
    await page.waitForSelector('[data-test=log] >> text=tick 3 of', { timeout: 60_000 });
    await page.click('[data-test=cancel]');
    assert.equal(await waitForStatus(page, ['canceled', 'live', 'failed']), 'canceled');
    await page.waitForSelector('[data-test=reason] >> text=Canceled by ada');
    const res = await servedRelease();
    assert.equal(res.status, 200);
    assert.match(res.body, /v2/);
  });

  it('rolls back to the first deployment without rebuilding', async () => {
    const { page } = tab;
    await page.goto(`${rhone.url}/apps/hello/deployments`);
    await page.click('[data-test=deployment-row-1] a');
    await page.waitForSelector('[data-test=rollback]');
    shots.push(await screenshot(page, '08-deployment-replaced'));
    await page.click('[data-test=rollback]');
    await page.waitForURL((u) => !u.pathname.endsWith('/deployments'));
    assert.equal(await waitForStatus(page, ['live', 'failed']), 'live');
    assert.equal(await page.getAttribute('[data-test=stage-build]', 'data-state'), 'skipped');
    assert.match((await servedRelease()).body, /v1/);
    await page.goto(`${rhone.url}/apps/hello/settings`);
    assert.equal(await page.isChecked('[data-test=auto-deploy]'), false, 'a rollback turns auto-deploy off');
  });

  it('shows env vars masked, reveals them to an owner, and saves a pasted .env', async () => {
    const { page } = tab;
    await page.goto(`${rhone.url}/apps/hello/env`);
    await page.click('[data-test=env-edit]');
    await page.fill('[data-test=env-text]', '# pasted\nDATABASE_URL="postgres://u:p@db/x"\nexport API_KEY=abc123\n');
    await page.waitForSelector('[data-test=env-summary] >> text=2 to add');
    await page.click('[data-test=env-save]');
    await page.waitForSelector('[data-test=env-list] >> text=API_KEY');
    assert.equal(
      await page
        .locator('[data-test=env-list]')
        .textContent()
        .then((t) => t!.includes('abc123')),
      false,
      'values are masked',
    );
    shots.push(await screenshot(page, '09-env'));
    await page.click('[data-test=env-reveal]');
    await page.waitForSelector('[data-test=env-list] >> text=abc123');
  });

  it('adds a custom domain from the Domains tab, serves the app on it, and removes it', async () => {
    const { page } = tab;
    await page.goto(`${rhone.url}/apps/hello`);
    await page.click('[data-test=tab-domains]');
    await page.waitForSelector('[data-test=domains-empty]');
    await page.fill('[data-test=domain-hostname]', 'shop.localhost');
    await page.click('[data-test=domain-add]');
    // One label under localhost is Rhone's own apps domain: refused beside the field. The browser
    // logs that refused request (a 400); it is the one expected console line.
    await page.waitForSelector('#domain-hostname-error');
    assert.deepEqual(tab.problems.splice(0), ['console: Failed to load resource: the server responded with a status of 400 (Bad Request)']);
    await page.fill('[data-test=domain-hostname]', 'www.hello.localhost');
    await page.click('[data-test=domain-add]');
    const row = page.locator('[data-test="domain-www.hello.localhost"]');
    await row.locator('[data-test=domain-status] >> text=active').waitFor();
    shots.push(await screenshot(page, '09-domains'));
    const served = await get(`http://127.0.0.1:${rhone.routerPort}`, `www.hello.localhost:${rhone.routerPort}`, '/release');
    assert.equal(served.status, 200);
    await row.locator('[data-test=domain-remove]').click();
    await row.locator('[data-test=confirm-input]').fill('www.hello.localhost');
    await row.locator('[data-test=confirm-delete]').click();
    await page.waitForSelector('[data-test=domains-empty]');
    assert.equal((await get(`http://127.0.0.1:${rhone.routerPort}`, `www.hello.localhost:${rhone.routerPort}`, '/release')).status, 404);
  });

  it('shows usage and billing, changes the plan (local mode) and sets a spend cap', async () => {
    const { page } = tab;
    await page.goto(`${rhone.url}/teams/ada`);
    await page.click('[data-test=nav-billing]');
    await page.waitForSelector('[data-test=plan] >> text=Free plan');
    await page.waitForSelector('[data-test=meter-builds]');
    // This team's deploys so far were counted as builds.
    assert.match((await page.locator('[data-test=meter-builds]').textContent())!, /[1-9]\d* of 50/);
    await page.click('[data-test=plan-pro]');
    await page.waitForSelector('[data-test=plan] >> text=Pro plan');
    await page.waitForSelector('[data-test=cost-total] >> text=$100.00');
    await page.fill('[data-test=spend-cap]', '25');
    await page.click('[data-test=spend-cap-save]');
    await page.waitForSelector('[data-test=toast-success] >> text=Spend cap set to $25.00');
    shots.push(await screenshot(page, '10-billing'));
  });

  it('shows a 100,000-line log smoothly: few rows in the page, quick to search and scroll', async () => {
    const { page } = tab;
    // A finished deployment whose log has 100,000 lines, written straight into npm start's database.
    const client = new pg.Client({ connectionString: testDatabaseUrl(DB) });
    await client.connect();
    let id: string;
    try {
      const { rows } = await client.query(`select id from deployments where status = 'canceled' limit 1`);
      id = rows[0].id;
      await client.query('delete from deployment_events where deployment_id = $1', [id]);
      await client.query(
        `insert into deployment_events (deployment_id, seq, type, data)
         select $1, n, 'log', jsonb_build_object('stage', 'build', 'stream', 'stdout', 'line', 'line ' || n || ' of the long log', 'at', now())
         from generate_series(1, 100000) n`,
        [id],
      );
      await client.query(
        `insert into deployment_events (deployment_id, seq, type, data) values ($1, 100001, 'status', '{"status":"canceled","stage":"build"}')`,
        [id],
      );
    } finally {
      await client.end();
    }
    const started = Date.now();
    await page.goto(`${rhone.url}/deployments/${id}`);
    await page.waitForSelector('[data-test=log-count] >> text=100000 lines', { timeout: 60_000 });
    const loadedMs = Date.now() - started;
    const rows = await page.locator('[data-test=log] .logline').count();
    assert.ok(rows < 200, `only the rows in view are in the page (${rows})`);
    // Jump to the middle: the rows there are drawn at once.
    await page.evaluate(() => {
      const log = document.querySelector('[data-test=log]')!;
      log.scrollTop = log.scrollHeight / 2;
    });
    await page.waitForSelector('[data-test=log] >> text=line 50000 of the long log');
    const searchStarted = Date.now();
    await page.fill('[data-test=log-search]', 'line 99999 ');
    await page.waitForSelector('[data-test=log-count] >> text=1 of 100000');
    const searchMs = Date.now() - searchStarted;
    console.log(`      100,000 lines: loaded and shown in ${loadedMs} ms, searched in ${searchMs} ms, ${rows} rows in the page`);
    assert.ok(searchMs < 2000, `search took ${searchMs} ms`);
  });

  it('can be used from the keyboard alone: sign in, then reach an app', async () => {
    const kb = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const { page, problems } = await openPage(kb);
    await page.goto(rhone.url);
    await page.waitForSelector('[data-test=login-input]:focus');
    await page.keyboard.type('grace');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/teams\/grace$/);
    // A new page puts focus on its content: the next Tab reaches the page's first control.
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'main');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-test')), 'new-app');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/apps\/new$/);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'name');
    await page.keyboard.type('Keyboard App');
    assert.equal(await page.inputValue('[data-test=app-slug]'), 'keyboard-app');
    // On a freshly loaded page, the skip link comes first.
    await page.reload();
    await page.waitForSelector('[data-test=app-name]');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
    assert.deepEqual(problems, []);
    await kb.close();
  });

  it('works on a phone-sized screen, and the team pages render', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, storageState: await context.storageState() });
    const small = await openPage(phone);
    for (const [name, route] of [
      ['11-phone-apps', '/teams/ada'],
      ['12-phone-deployments', '/apps/hello/deployments'],
      ['13-members', '/teams/ada/members'],
      ['14-audit', '/teams/ada/audit'],
      ['16-phone-billing', '/teams/ada/billing'],
      ['15-tokens', '/account/tokens'],
    ]) {
      await small.page.goto(`${rhone.url}${route}`);
      await small.page.waitForLoadState('networkidle');
      assert.equal(new URL(small.page.url()).pathname, route, 'still signed in, on the page asked for');
      const overflow = await small.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 1, `${route} scrolls sideways by ${overflow}px on a phone`);
      shots.push(await screenshot(small.page, name));
    }
    assert.deepEqual(small.problems, []);
    await phone.close();
  });
});
