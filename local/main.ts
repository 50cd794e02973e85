// The local runtime: a Fly-Machines-API-compatible server that runs machines as local processes,
// plus the Host-header router in front of them. Started in-process by tests and by `npm start`
// in local mode, or on its own with `node --import tsx local/main.ts`.
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { registerAppResources } from './api/app-resources.ts';
import { registerApps } from './api/apps.ts';
import { createApiServer, RouteTable } from './api/http.ts';
import { registerMachineExtras } from './api/machine-extras.ts';
import { registerMachines } from './api/machines.ts';
import { silentLogger, type LocalLogger } from './log.ts';
import { reconcile } from './reconcile.ts';
import { createRouterServer, Router } from './router.ts';
import { Runtime } from './runtime.ts';
import { Store } from './store.ts';
import { Supervisor } from './supervisor.ts';
import type { HostResolver } from './certificates.ts';
import { MachinesTokenError, machinesToken, machinesTokenPath } from './token.ts';

export interface LocalRuntimeOptions {
  dataDir: string;
  /** 0 picks a free port; the handle reports the real one. */
  machinesPort: number;
  routerPort: number;
  host?: string;
  /** `{label}.<appsDomain>` routes to app rhone-{label}. Default "localhost". */
  appsDomain?: string;
  log?: LocalLogger;
  /** Resolves a custom domain's hostname (node:dns by default); tests pass their own. */
  resolveHost?: HostResolver;
}

export interface LocalRuntime {
  machinesUrl: string;
  routerUrl: string;
  /** What the Machines API wants as "Authorization: Bearer <token>"; kept in tokenFile (mode 0600). */
  token: string;
  tokenFile: string;
  /** The shared state, for in-process callers (tests, the bandwidth meter). */
  runtime: Runtime;
  /**
   * Stops serving and stops every machine process gracefully (its stop signal, then SIGKILL after
   * its stop timeout); machines keep their recorded state, so the next start restarts them.
   * `leaveMachinesRunning` skips the stopping, as a crash would, to exercise reconcile.
   */
  close(options?: { leaveMachinesRunning?: boolean }): Promise<void>;
}

function listen(server: http.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: http.Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export async function startLocalRuntime(options: LocalRuntimeOptions): Promise<LocalRuntime> {
  const host = options.host ?? '127.0.0.1';
  const log = options.log ?? silentLogger;
  const dataDir = path.resolve(options.dataDir);
  // First, before anything is opened: an unsafe token file stops the start. Only the API needs the
  // token; the router stays token-free, as it is how apps are reached.
  const tokenFile = machinesTokenPath(dataDir);
  const token = machinesToken(dataDir);
  const store = new Store(dataDir);
  const supervisor = new Supervisor(dataDir, store, log);
  const runtime = new Runtime(dataDir, store, supervisor, log, options.appsDomain ?? 'localhost', options.resolveHost);

  const routes = new RouteTable();
  registerApps(routes, runtime);
  registerMachines(routes, runtime);
  registerMachineExtras(routes, runtime);
  registerAppResources(routes, runtime);
  const api = createApiServer(routes, log, { token, tokenFile });
  let routerPort = options.routerPort;
  const router = new Router(runtime, () => routerPort);
  const proxy = createRouterServer(router);

  await reconcile(runtime);
  let machinesPort: number;
  try {
    machinesPort = await listen(api, options.machinesPort, host);
    routerPort = await listen(proxy, options.routerPort, host);
  } catch (err) {
    await Promise.all([closeServer(api), closeServer(proxy)]);
    await supervisor.shutdown();
    store.close();
    throw err;
  }
  const urlHost = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    machinesUrl: `http://${urlHost}:${machinesPort}`,
    routerUrl: `http://${urlHost}:${routerPort}`,
    token,
    tokenFile,
    runtime,
    close(closeOptions = {}) {
      closing ??= (async () => {
        await Promise.all([closeServer(api), closeServer(proxy)]);
        router.close();
        if (closeOptions.leaveMachinesRunning) supervisor.abandon();
        else await supervisor.shutdown();
        store.close();
      })();
      return closing;
    },
  };
}

async function main(): Promise<void> {
  const { configOrExit } = await import('../backend/config.ts');
  const { logger } = await import('../backend/lib/logger.ts');
  const config = configOrExit();
  const log = logger().child({ process: 'local-runtime' });
  const local = await startLocalRuntime({
    dataDir: config.dataDir,
    machinesPort: config.machinesPort,
    routerPort: config.routerPort,
    appsDomain: config.appsDomain,
    log,
  }).catch((err: NodeJS.ErrnoException & { port?: number }) => {
    if (err instanceof MachinesTokenError) {
      console.error(err.message);
      process.exit(1);
    }
    if (err.code !== 'EADDRINUSE') throw err;
    // The default router port, 8080, is often taken: say which setting moves it.
    const setting = err.port === config.routerPort ? 'RHONE_ROUTER_PORT' : 'RHONE_MACHINES_PORT';
    console.error(`The local runtime cannot listen on 127.0.0.1:${err.port}: another program uses that port. Stop it, or set ${setting} to a free port.`);
    process.exit(1);
  });
  log.info({ machinesUrl: local.machinesUrl, routerUrl: local.routerUrl, dataDir: config.dataDir }, 'local runtime listening');
  const stop = (signal: string) => {
    log.info({ signal }, 'local runtime stopping its machines');
    local.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'local runtime did not close cleanly');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
