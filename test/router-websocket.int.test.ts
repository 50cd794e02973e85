// The router closes a proxied WebSocket both ways when either side goes away: a client that
// half-closes (sends FIN and waits) must not leave a half-open pair behind.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { appConfig, healthy, useRuntime, until } from './local-helpers.ts';

describe('router: WebSocket connections', function () {
  this.timeout(20_000);
  const rt = useRuntime();

  async function upgraded(): Promise<net.Socket> {
    const url = new URL(rt.local.routerUrl);
    const socket = net.connect(Number(url.port), url.hostname);
    await once(socket, 'connect');
    socket.write(
      'GET /ws HTTP/1.1\r\nHost: shop.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    const [head] = (await once(socket, 'data')) as [Buffer];
    assert.match(head.toString(), /^HTTP\/1\.1 101 /);
    return socket;
  }

  it('closes both directions when the client half-closes its connection', async () => {
    const app = await rt.api.createApp('rhone-shop');
    const m = await rt.api.createMachine(app, { config: appConfig() });
    await healthy(rt.api, app, m.id);
    const socket = await upgraded();
    let closed = false;
    socket.on('close', () => (closed = true));
    socket.resume();
    socket.end(); // FIN, and keep reading: the router must finish the connection
    await until('the router to close its side', () => closed, 5_000);
  });
});
