// A TCP proxy in front of Postgres or Redis that fails the way a network or a server does:
// refuse (nothing listens: ECONNREFUSED), reset (every open connection gets an RST), and
// blackhole (connections are accepted, or kept, but nothing passes either way).
import net, { type AddressInfo } from 'node:net';

export type ProxyMode = 'pass' | 'refuse' | 'blackhole';

export interface TcpProxy {
  /** host:port to connect to instead of the target. */
  host: string;
  port: number;
  readonly mode: ProxyMode;
  setMode(mode: ProxyMode): Promise<void>;
  /** Resets every open connection (the client sees ECONNRESET). */
  reset(): void;
  /** Connections open right now. */
  readonly open: number;
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let mode: ProxyMode = 'pass';
  let server: net.Server | undefined;
  let port = 0;

  const onConnection = (client: net.Socket) => {
    const upstream = net.connect(target.port, target.host);
    const pair = { client, upstream };
    pairs.add(pair);
    const forget = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', forget).on('close', forget);
    upstream.on('error', forget).on('close', forget);
    if (mode === 'pass') flow(pair);
    else hold(pair);
  };
  // Held bytes stay in the sockets' buffers, so a connection works again once the mode is back to pass.
  const flow = ({ client, upstream }: Pair) => {
    client.pipe(upstream);
    upstream.pipe(client);
  };
  const hold = ({ client, upstream }: Pair) => {
    client.unpipe(upstream);
    upstream.unpipe(client);
    client.pause();
    upstream.pause();
  };

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = net.createServer(onConnection);
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as AddressInfo).port;
        server = s;
        resolve();
      });
    });
  const stopListening = () =>
    new Promise<void>((resolve) => {
      const s = server;
      server = undefined;
      if (!s) return resolve();
      s.close(() => resolve());
    });
  const reset = () => {
    for (const { client, upstream } of [...pairs]) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    pairs.clear();
  };

  await listen();
  return {
    host: '127.0.0.1',
    get port() {
      return port;
    },
    get mode() {
      return mode;
    },
    get open() {
      return pairs.size;
    },
    async setMode(next) {
      mode = next;
      for (const pair of pairs) (next === 'pass' ? flow : hold)(pair);
      if (next === 'refuse') {
        // close() waits for open connections to end: reset them once it has stopped listening.
        const closed = stopListening();
        reset();
        await closed;
      } else if (!server) {
        await listen();
      }
    },
    reset,
    async close() {
      const closed = stopListening();
      reset();
      await closed;
    },
  };
}

/** A proxy in front of the test database, and the database URL that goes through it. */
export async function startDatabaseProxy(databaseUrl: string): Promise<{ proxy: TcpProxy; url: string }> {
  const url = new URL(databaseUrl);
  const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
  url.host = `${proxy.host}:${proxy.port}`;
  return { proxy, url: url.href };
}
