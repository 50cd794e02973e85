// A steady load through the local router: a few loops sending requests back to back with a Host
// header, recording every outcome, until stopped.
import http from 'node:http';

export interface LoadResult {
  ok: number;
  failed: number;
  failures: string[];
  /** Response bodies in the order they completed (e.g. the release that answered). */
  bodies: string[];
}

export function get(routerUrl: string, host: string, path: string, agent?: http.Agent): Promise<{ status: number; body: string }> {
  const url = new URL(routerUrl);
  return new Promise((resolve, reject) => {
    const req = http.get({ hostname: url.hostname, port: url.port, path, headers: { host }, agent, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 10 s')));
    req.on('error', reject);
  });
}

export function startLoad(routerUrl: string, host: string, path: string, concurrency = 4): { stop(): Promise<LoadResult> } {
  const result: LoadResult = { ok: 0, failed: 0, failures: [], bodies: [] };
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let running = true;
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      try {
        const res = await get(routerUrl, host, path, agent);
        if (res.status === 200) {
          result.ok += 1;
          result.bodies.push(res.body);
        } else {
          result.failed += 1;
          result.failures.push(`${res.status}: ${res.body.slice(0, 120)}`);
        }
      } catch (err) {
        result.failed += 1;
        result.failures.push((err as Error).message);
      }
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return result;
    },
  };
}
