// Child process of bench/api.ts: the second baseline, a bare Koa answering every request with the
// exact body and headers Rhone sent for the apps page (given by the parent over IPC before it
// listens). Against it, bench:api measures what Rhone costs beyond writing the same 30 KB: no
// gzip on either side (the load generator asks for none). Exits when the parent goes away.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import Koa from 'koa';

interface Page {
  body: string;
  headers: Record<string, string>;
}

let server: Server | undefined;

process.once('message', (page: Page) => {
  const body = Buffer.from(page.body);
  const app = new Koa();
  app.use((ctx) => {
    ctx.set(page.headers);
    ctx.body = body;
  });
  server = app.listen(0, '127.0.0.1', () => {
    process.send?.({ port: (server!.address() as AddressInfo).port });
  });
  server.keepAliveTimeout = 65_000;
});

const stop = () => {
  if (!server) process.exit(0);
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('disconnect', stop);
