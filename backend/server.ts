// The api process: `node --import tsx backend/server.ts`.
import type { Server } from 'node:http';
import { configOrExit } from './config.ts';
import { closeDb, db } from './db.ts';
import { closeRedis, redis } from './redis.ts';
import { logger } from './lib/logger.ts';
import { attachUpgrades, closeApp, createApp } from './app.ts';
import { closeEventStreams } from './routes/deployments/events.ts';

export async function startServer(port: number): Promise<Server> {
  const config = configOrExit();
  const log = logger();
  const app = createApp({ config, knex: db(), redis: redis(), log });
  // Local mode signs anyone in by login alone, so it listens on this machine only; production
  // listens everywhere, behind Fly's proxy.
  const host = config.isLocal ? '127.0.0.1' : '::';
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host, () => resolve(server));
    attachUpgrades(app, server);
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') {
        reject(new Error(`The api cannot listen on ${host}:${port}: another program uses that port. Stop it, or set PORT to a free port.`));
      } else reject(err);
    });
    server.once('close', () => void closeApp(app));
    // Longer than Fly's proxy idle timeout, so the proxy closes idle keep-alive sockets first.
    server.keepAliveTimeout = 65_000;
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const config = configOrExit();
  const log = logger();
  const server = await startServer(config.port).catch((err: Error) => {
    console.error(`rhone: ${err.message}`);
    process.exit(1);
  });
  log.info({ url: config.publicUrl }, `Rhone api listening on ${config.publicUrl}`);
  // Graceful shutdown: stop accepting, finish what is in flight, then close pools.
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down api');
    const force = setTimeout(() => process.exit(1), 10_000).unref();
    // Open event streams would hold the close up; their clients resume elsewhere with Last-Event-ID.
    await closeEventStreams().catch(() => undefined);
    server.close(async () => {
      await Promise.allSettled([closeDb(), closeRedis()]);
      clearTimeout(force);
      process.exit(0);
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
