// The api process's own server: where it listens, and what it says when it cannot.
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { startServer } from '../backend/server.ts';

describe('api server', () => {
  it('listens on loopback only in local mode, where sign-in needs no password', async () => {
    const server = await startServer(0);
    try {
      assert.equal((server.address() as AddressInfo).address, '127.0.0.1');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('says which setting to change when its port is taken', async () => {
    const blocker = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    const { port } = blocker.address() as AddressInfo;
    try {
      await assert.rejects(startServer(port), /cannot listen on 127\.0\.0\.1:\d+: another program uses that port\. Stop it, or set PORT to a free port\./);
    } finally {
      blocker.close();
    }
  });
});
