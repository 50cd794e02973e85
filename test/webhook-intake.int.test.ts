// What an unauthenticated POST /webhooks/github may cost before its signature is known: refused from
// its headers alone when they cannot be GitHub's, a few bodies read at once per address, and a rate
// limit per address. Requests are held open with node:http so the test decides when bodies arrive.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Webhooks } from '@octokit/webhooks';
import { appWebhookGate } from '../backend/app.ts';
import { SLOT_WAIT_MS } from '../backend/routes/webhooks/intake.ts';
import { db } from '../backend/db.ts';
import { WebhookDelivery } from '../backend/models/index.ts';
import { startTestServer, type TestServer } from './http.ts';
import { githubAppConfig, useGithubAppWorld, WEBHOOK_SECRET } from './support/github-app.ts';
import { answeredWithin, holdRequest } from './support/held-request.ts';
import { until } from './local-helpers.ts';

const WRONG = `sha256=${'0'.repeat(64)}`;
const MB = 1024 * 1024;

function githubHeaders(length: number, signature: string | null = WRONG): Record<string, string> {
  return {
    'content-type': 'application/json',
    'content-length': String(length),
    'x-github-event': 'push',
    'x-github-delivery': randomUUID(),
    ...(signature === null ? {} : { 'x-hub-signature-256': signature }),
  };
}

describe('Webhook intake limits (GitHub)', () => {
  const world = useGithubAppWorld({ mode: 'local' });
  const url = () => `${world.server.url}/webhooks/github`;
  const gate = () => appWebhookGate(world.server.app)!;

  it('refuses a body over 25 MB from its Content-Length alone, and a missing or malformed signature, without reading the body', async () => {
    const big = holdRequest(url(), githubHeaders(25 * MB + 1));
    const tooBig = await answeredWithin(big, 5000, 'the api waited for a body it must refuse from its length');
    assert.equal(tooBig.status, 413);
    assert.equal(tooBig.body.error, 'payload_too_large');
    assert.match(tooBig.body.message, /larger than the 25 MB GitHub sends at most/);
    assert.equal(tooBig.headers.connection, 'close');

    for (const signature of [null, 'sha1=abc', 'sha256=xyz']) {
      const held = holdRequest(url(), githubHeaders(1000, signature), '{"a":');
      const res = await answeredWithin(held, 5000, `the api read the body of a request signed ${signature}`);
      assert.equal(res.status, 401);
      assert.equal(res.body.error, 'invalid_signature');
      held.req.destroy();
    }
    assert.equal(gate().inFlight(), 0);
    assert.equal(await WebhookDelivery.query(db()).resultSize(), 0);
  });

  it('lets a third body from one address wait its turn instead of refusing it (GitHub never redelivers by itself)', async () => {
    const first = holdRequest(url(), githubHeaders(1000), '{"ref":');
    const second = holdRequest(url(), githubHeaders(1000), '{"ref":');
    await until('two bodies being read', () => gate().inFlight('127.0.0.1') === 2);
    const body = JSON.stringify({ zen: 'x' });
    const signed = await new Webhooks({ secret: WEBHOOK_SECRET }).sign(body);
    const third = holdRequest(url(), { ...githubHeaders(Buffer.byteLength(body), signed), 'x-github-event': 'ping' }, body);
    third.req.end();
    await until('the third delivery to wait for a slot', () => gate().queued === 1);
    first.req.destroy(); // a slot frees: the waiting delivery is read and answered
    assert.equal((await answeredWithin(third, 5000, 'the waiting delivery')).status, 200);
    assert.equal(gate().queued, 0);
    second.req.destroy();
    await until('every slot to be free', () => gate().inFlight() === 0);
  });

  it('reads at most two bodies at once from one address: a third gets 429 with Retry-After after its wait, and a slot frees when a sender goes away', async () => {
    const first = holdRequest(url(), githubHeaders(1000), '{"ref":');
    const second = holdRequest(url(), githubHeaders(1000), '{"ref":');
    await until('two bodies being read', () => gate().inFlight('127.0.0.1') === 2);

    const body = JSON.stringify({ zen: 'x' });
    const third = holdRequest(url(), githubHeaders(Buffer.byteLength(body)), body);
    third.req.end();
    const refused = await answeredWithin(third, SLOT_WAIT_MS + 2000, 'the third body was waited for past the slot wait');
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.equal(refused.body.error, 'too_many_in_flight');
    assert.equal(refused.headers['retry-after'], '1');

    // One sender gives up halfway: its slot is free again, and the next delivery goes through.
    first.req.destroy();
    await until('the abandoned body to be let go', () => gate().inFlight('127.0.0.1') === 1);
    const signed = await new Webhooks({ secret: WEBHOOK_SECRET }).sign(body);
    const next = holdRequest(url(), { ...githubHeaders(Buffer.byteLength(body), signed), 'x-github-event': 'ping' }, body);
    next.req.end();
    assert.equal((await answeredWithin(next, 5000, 'a delivery after a slot freed')).status, 200);

    // The other finishes its body: checked, refused, and its slot freed.
    second.req.end('"x"}'.padEnd(1000 - 7, ' '));
    const done = await answeredWithin(second, 5000, 'the second body, once complete');
    assert.equal(done.status, 401);
    assert.equal(gate().inFlight(), 0);
  });

  describe('with a low rate limit', () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer({
        config: githubAppConfig(world.fake, world.app, 'local', { webhooks: { maxInFlight: 8, maxInFlightPerAddress: 2, perMinutePerAddress: 3 } }),
        queues: world.queues,
      });
    });
    after(async () => {
      await server.close();
    });

    it('answers 429 with Retry-After once an address sent its requests for the minute, before reading the body', async () => {
      const body = JSON.stringify({ zen: 'x' });
      for (let i = 0; i < 3; i++) {
        const held = holdRequest(`${server.url}/webhooks/github`, githubHeaders(Buffer.byteLength(body)), body);
        held.req.end();
        assert.equal((await answeredWithin(held, 5000, `request ${i + 1}`)).status, 401);
      }
      const limited = holdRequest(`${server.url}/webhooks/github`, githubHeaders(1000));
      const res = await answeredWithin(limited, 5000, 'a rate-limited request waited for its body');
      assert.equal(res.status, 429, JSON.stringify(res.body));
      assert.equal(res.body.error, 'rate_limited');
      assert.ok(Number(res.headers['retry-after']) >= 1 && Number(res.headers['retry-after']) <= 60, String(res.headers['retry-after']));
      limited.req.destroy();
    });
  });
});
