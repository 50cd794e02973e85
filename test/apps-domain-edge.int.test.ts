// Production's apps domain: a request for https://{slug}.<apps domain> arrives at Rhone (its Fly app
// holds the wildcard certificate) and is answered with fly-replay naming the app's own Fly app, so
// Fly's proxy replays it there; a WebSocket upgrade gets the same answer instead of a 101.
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { pino } from 'pino';
import { getConfig, type Config } from '../backend/config.ts';
import { db } from '../backend/db.ts';
import { redis } from '../backend/redis.ts';
import { attachUpgrades, closeApp, createApp } from '../backend/app.ts';
import { appUrl } from '../backend/presenters/index.ts';
import { makeApp, makeTeam, makeUser } from './factories.ts';

describe('the apps domain in production (fly-replay edge)', () => {
  const config: Config = {
    ...getConfig(),
    isLocal: false,
    mode: 'production',
    publicUrl: 'https://dash.rhone.test',
    appsDomain: 'rhone.test',
    appsDomainRouted: true,
  };
  let server: http.Server;
  let port: number;
  let koa: ReturnType<typeof createApp>;

  beforeEach(async () => {
    koa = createApp({ config, knex: db(), redis: redis(), log: pino({ level: 'silent' }) });
    server = http.createServer(koa.callback());
    attachUpgrades(koa, server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await closeApp(koa);
  });

  const get = (host: string, path = '/') =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        })
        .on('error', reject);
    });

  it("hands an app's address to its Fly app, refuses unknown ones, and leaves the dashboard alone", async () => {
    const ada = await makeUser('ada');
    const app = await makeApp(ada, await makeTeam(ada, 'acme'), 'shop');
    const res = await get('shop.rhone.test', '/cart?x=1');
    assert.equal(res.headers['fly-replay'], `app=${app.flyAppName}`);
    assert.equal(res.headers['cache-control'], 'no-store');
    const unknown = await get('nothing-here.rhone.test');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.headers['fly-replay'], undefined);
    assert.match(unknown.body, /^There is no app at nothing-here\.rhone\.test/);
    // The dashboard's own host, and deeper names, are the api's.
    assert.equal((await get('dash.rhone.test', '/healthz')).headers['fly-replay'], undefined);
    assert.equal((await get('a.shop.rhone.test', '/healthz')).headers['fly-replay'], undefined);
    assert.equal(appUrl(config, app), 'https://shop.rhone.test');
    assert.equal(
      appUrl({ ...config, appsDomainRouted: false }, app),
      `https://${app.flyAppName}.fly.dev`,
      'until the edge is set up, the address that answers',
    );
  });

  it('answers a WebSocket upgrade with fly-replay rather than taking the connection', async () => {
    const ada = await makeUser('ada');
    const app = await makeApp(ada, await makeTeam(ada, 'acme'), 'chat');
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(
      'GET /_vango/ws HTTP/1.1\r\nHost: chat.rhone.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString()));
    await once(socket, 'end');
    assert.doesNotMatch(text, /^HTTP\/1\.1 101/);
    assert.match(text, new RegExp(`\\r\\nfly-replay: app=${app.flyAppName}\\r\\n`));
  });
});
