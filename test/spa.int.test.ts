// The dashboard as the api serves it: Vite's build, hashed assets cached for a year and sent
// gzipped, index.html never cached, history-mode fallback, and a clear 404 for a stale asset.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { ensureFrontendBuilt, frontendDist } from '../backend/cli/frontend.ts';
import { startTestServer, type TestServer } from './http.ts';

function rawGet(url: string, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      })
      .on('error', reject);
  });
}

describe('dashboard serving', function () {
  this.timeout(120_000);
  let server: TestServer;

  before(async () => {
    await ensureFrontendBuilt(() => {});
    server = await startTestServer();
  });
  after(() => server.close());

  it('serves index.html for any page, uncached, with the hashed entry script', async () => {
    for (const page of ['/', '/teams/acme', '/apps/web/deployments', '/deployments/1234']) {
      const res = await fetch(`${server.url}${page}`, { headers: { accept: 'text/html' } });
      assert.equal(res.status, 200, page);
      assert.equal(res.headers.get('cache-control'), 'no-cache');
      assert.match(await res.text(), /<script type="module" crossorigin src="\/assets\/index-[\w-]+\.js"><\/script>/);
    }
    // API paths are never the dashboard, even when a browser asks for HTML.
    const api = await fetch(`${server.url}/api/nothing`, { headers: { accept: 'text/html' } });
    assert.equal(api.status, 404);
    assert.match(api.headers.get('content-type') ?? '', /json/);
  });

  it('sends hashed assets gzipped with a year-long immutable cache, and plain to clients without gzip', async () => {
    const entry = readdirSync(path.join(frontendDist, 'assets')).find((f) => /^index-.*\.js$/.test(f))!;
    // node:http, not fetch: fetch would undo the gzip before we could see it.
    const zipped = await rawGet(`${server.url}/assets/${entry}`, { 'accept-encoding': 'gzip, deflate' });
    assert.equal(zipped.status, 200);
    assert.equal(zipped.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.match(zipped.headers['content-type'] ?? '', /javascript/);
    assert.equal(zipped.headers['content-encoding'], 'gzip');
    const plain = await rawGet(`${server.url}/assets/${entry}`, { 'accept-encoding': 'identity' });
    assert.equal(plain.headers['content-encoding'], undefined);
    const plainBody = plain.body;
    assert.ok(zipped.body.length < plainBody.length / 2, 'the gzip copy is much smaller');
    assert.ok(gunzipSync(zipped.body).equals(plainBody), 'and unzips to the asset');
    assert.match(plainBody.toString(), /createApp|mount/);
  });

  it('answers a missing or malformed asset path with a 404 that says to reload', async () => {
    for (const p of ['/assets/index-gone.js', '/assets/..%2Fpackage.json', '/assets/a/b.js']) {
      const res = await fetch(`${server.url}${p}`);
      assert.equal(res.status, 404, p);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      assert.match((await res.json()).message, /Reload the page/);
    }
  });

  it('tells the sign-in page which sign-in methods exist', async () => {
    const res = await fetch(`${server.url}/auth/providers`);
    assert.deepEqual(await res.json(), { dev: true, github: false });
  });
});
