// The Fly client's certificate calls against a fake of Fly's certificates API that checks every
// request and answer against Fly's spec: a certificate walks pending_validation → pending_ownership
// → active as Fly re-checks DNS, 429s are waited out (honouring Retry-After), and
// rate_limited_until comes through.
import assert from 'node:assert/strict';
import { FlyClient } from '../backend/providers/fly/client.ts';
import { FlyApiError } from '../backend/providers/fly/errors.ts';
import { DEFAULT_STEPS, startFakeFly, type FakeFly } from './support/fake-fly-certificates.ts';

describe('Fly client: certificates', () => {
  let fly: FakeFly;
  let sleeps: number[];
  let client: FlyClient;

  beforeEach(async () => {
    fly = await startFakeFly();
    fly.apps.add('rhone-shop');
    sleeps = [];
    client = new FlyClient({ baseUrl: fly.url, token: 'fo1_test', sleep: async (ms) => void sleeps.push(ms) });
  });
  afterEach(async () => {
    assert.deepEqual(fly.specProblems, [], "every request and answer matched Fly's spec");
    await fly.close();
  });

  it('walks a certificate from pending_validation through pending_ownership to active, then deletes it', async () => {
    const created = await client.requestCertificate('rhone-shop', 'shop.example.com');
    assert.equal(created.status, 'pending_validation');
    assert.equal(created.dns_requirements?.cname, 'rhone-shop.fly.dev');
    assert.equal(created.dns_requirements?.acme_challenge?.name, '_acme-challenge.shop.example.com');
    assert.equal((await client.getCertificate('rhone-shop', 'shop.example.com'))?.status, 'pending_validation', 'a read does not move it');
    assert.equal((await client.checkCertificate('rhone-shop', 'shop.example.com')).status, 'pending_ownership');
    const active = await client.checkCertificate('rhone-shop', 'shop.example.com');
    assert.equal(active.status, 'active');
    assert.equal(active.certificates?.[0]?.issuer, "Let's Encrypt R11");
    await client.deleteCertificate('rhone-shop', 'shop.example.com');
    assert.equal(await client.getCertificate('rhone-shop', 'shop.example.com'), null);
    await client.deleteCertificate('rhone-shop', 'shop.example.com'); // already gone: not an error
    assert.deepEqual(sleeps, []);
  });

  it('encodes a wildcard hostname in the path, as %2A', async () => {
    await client.requestCertificate('rhone-shop', '*.example.com');
    assert.equal((await client.getCertificate('rhone-shop', '*.example.com'))?.hostname, '*.example.com');
    assert.ok(
      fly.requests.some((r) => r.path === '/v1/apps/rhone-shop/certificates/%2A.example.com'),
      fly.requests.map((r) => r.path).join(', '),
    );
  });

  it('waits out 429s as long as Retry-After says, then succeeds', async () => {
    fly.tooManyRequests = 2;
    const cert = await client.requestCertificate('rhone-shop', 'shop.example.com');
    assert.equal(cert.status, 'pending_validation');
    assert.deepEqual(sleeps, [1000, 1000]);
    assert.deepEqual(
      fly.requests.map((r) => r.status),
      [429, 429, 201],
    );
  });

  it('gives up on 429s after its retries, with a transient error', async () => {
    fly.tooManyRequests = 100;
    const limited = new FlyClient({ baseUrl: fly.url, token: 'fo1_test', retries: 2, sleep: async () => undefined });
    await assert.rejects(
      limited.checkCertificate('rhone-shop', 'shop.example.com'),
      (err: unknown) => err instanceof FlyApiError && err.status === 429 && err.transient,
    );
  });

  it("passes Let's Encrypt's rate_limited_until through", async () => {
    const until = '2026-12-01T10:00:00Z';
    fly.steps = [DEFAULT_STEPS[0], { ...DEFAULT_STEPS[1], rateLimitedUntil: until }];
    await client.requestCertificate('rhone-shop', 'shop.example.com');
    assert.equal((await client.checkCertificate('rhone-shop', 'shop.example.com')).rate_limited_until, until);
  });

  it("a refused hostname is a permanent error with Fly's words", async () => {
    fly.apps.add('rhone-other');
    await client.requestCertificate('rhone-other', 'shop.example.com');
    await assert.rejects(
      client.requestCertificate('rhone-shop', 'shop.example.com'),
      (err: unknown) =>
        err instanceof FlyApiError && err.status === 422 && !err.transient && err.detail === 'shop.example.com is already in use by another app',
    );
  });
});
