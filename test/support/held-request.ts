// HTTP requests whose body the test sends when it chooses (or never): to see what a server answers
// before, or while, a body arrives. fetch() cannot hold a body open; node:http can.
import { request, type ClientRequest, type IncomingHttpHeaders } from 'node:http';

export interface HeldAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: any;
}

export interface HeldRequest {
  req: ClientRequest;
  /** The answer, whenever the server gives it. */
  answer: Promise<HeldAnswer>;
}

/** POSTs `headers` (and `first`, if given) to `url`, leaving the rest of the body unsent. */
export function holdRequest(url: string, headers: Record<string, string>, first?: Buffer | string): HeldRequest {
  const req = request(url, { method: 'POST', headers });
  const answer = new Promise<HeldAnswer>((resolve, reject) => {
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text ? JSON.parse(text) : undefined });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  // A held request the test abandons errors when it is destroyed; nobody waits on it then.
  answer.catch(() => undefined);
  req.flushHeaders();
  if (first !== undefined) req.write(first);
  return { req, answer };
}

/** The answer, or a failure saying the server did not answer in time (it was waiting for the body). */
export async function answeredWithin(held: HeldRequest, ms: number, what: string): Promise<HeldAnswer> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([held.answer, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
