// A small in-memory S3 for tests, spoken to by the real @aws-sdk/client-s3 with path-style
// addressing (http://127.0.0.1:<port>/<bucket>/<key>). It checks every request's AWS Signature
// Version 4 against the one access key it knows (a wrong key or secret is a 403, as on S3), and
// serves the operations the artifact store uses: PutObject, GetObject, HeadObject, DeleteObject,
// DeleteObjects, ListObjectsV2 (with a small page size, to exercise paging) and multipart uploads.
// An object appears only when its request body arrived whole, or its multipart upload completed.
import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import type { S3Settings } from '../../backend/config.ts';

export interface FakeS3Options {
  bucket?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  region?: string;
  /** The most keys one ListObjectsV2 page holds, whatever the client asks for. */
  maxKeys?: number;
}

interface StoredObject {
  body: Buffer;
  etag: string;
  lastModified: Date;
}

interface Upload {
  bucket: string;
  key: string;
  parts: Map<number, { body: Buffer; etag: string }>;
}

class S3Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const MIN_PART_SIZE = 5 * 1024 * 1024;
const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const xmlUnescape = (s: string) =>
  s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)))
    .replace(/&amp;/g, '&');
const md5 = (b: Buffer) => `"${createHash('md5').update(b).digest('hex')}"`;
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();
// RFC 3986 encoding, as SigV4's canonical query string wants it.
const uriEncode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

export class FakeS3 {
  readonly bucket: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly region: string;
  maxKeys: number;
  /** Operations received (counted when the request starts, before its body arrives). */
  readonly ops: Record<string, number> = {};
  /** Milliseconds to hold an operation's answer, e.g. `{ UploadPart: 5000 }` to catch a writer mid-upload. */
  readonly delays: Record<string, number> = {};
  /** Requests refused for a missing or bad signature. */
  unauthorized = 0;
  private readonly buckets = new Map<string, Map<string, StoredObject>>();
  private readonly uploads = new Map<string, Upload>();
  private server?: http.Server;
  url = '';

  constructor(options: FakeS3Options = {}) {
    this.bucket = options.bucket ?? 'rhone-artifacts';
    this.accessKeyId = options.accessKeyId ?? 'tid_test_access_key';
    this.secretAccessKey = options.secretAccessKey ?? 'tsec_test_secret_key';
    this.region = options.region ?? 'auto';
    this.maxKeys = options.maxKeys ?? 1000;
    this.buckets.set(this.bucket, new Map());
  }

  static async start(options: FakeS3Options = {}): Promise<FakeS3> {
    const fake = new FakeS3(options);
    fake.server = http.createServer((req, res) => void fake.handle(req, res));
    await new Promise<void>((resolve) => fake.server!.listen(0, '127.0.0.1', resolve));
    fake.url = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
    return fake;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }

  /** What Rhone's configuration would hold for this server. */
  settings(overrides: Partial<S3Settings> = {}): S3Settings {
    return {
      bucket: this.bucket,
      endpoint: this.url,
      region: this.region,
      forcePathStyle: true,
      accessKeyId: this.accessKeyId,
      secretAccessKey: this.secretAccessKey,
      ...overrides,
    };
  }

  /** Keys of the complete objects in the bucket, sorted. */
  keys(): string[] {
    return [...this.objects().keys()].sort();
  }

  body(key: string): Buffer | undefined {
    return this.objects().get(key)?.body;
  }

  /** Stores an object directly, as another writer of the bucket might. */
  put(key: string, body: Buffer): void {
    this.objects().set(key, { body, etag: md5(body), lastModified: new Date() });
  }

  /** Multipart uploads started and neither completed nor aborted. */
  openUploads(): { key: string; parts: number }[] {
    return [...this.uploads.values()].map((u) => ({ key: u.key, parts: u.parts.size }));
  }

  private objects(bucket = this.bucket): Map<string, StoredObject> {
    const objects = this.buckets.get(bucket);
    if (!objects) throw new S3Error(404, 'NoSuchBucket', `The bucket ${bucket} does not exist`);
    return objects;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const [, bucket = '', ...rest] = url.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    const q = url.searchParams;
    const op = operation(req.method ?? 'GET', key, q);
    this.ops[op] = (this.ops[op] ?? 0) + 1;
    try {
      // The body first: a request whose client died before sending it all changes nothing.
      const body = await readBody(req);
      this.authenticate(req);
      this.checkPayload(req, body);
      if (this.delays[op]) await new Promise((resolve) => setTimeout(resolve, this.delays[op]));
      await this.serve(op, req, res, decodeURIComponent(bucket), key, q, body);
    } catch (err) {
      if (res.headersSent || res.destroyed) return;
      const e = err instanceof S3Error ? err : new S3Error(500, 'InternalError', (err as Error).message);
      res.writeHead(e.status, { 'content-type': 'application/xml' });
      res.end(
        req.method === 'HEAD'
          ? undefined
          : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${e.code}</Code><Message>${xmlEscape(e.message)}</Message><RequestId>${randomUUID()}</RequestId></Error>`,
      );
    }
  }

  private async serve(op: string, req: IncomingMessage, res: ServerResponse, bucket: string, key: string, q: URLSearchParams, body: Buffer): Promise<void> {
    const objects = this.objects(bucket);
    const xml = (status: number, text: string) => {
      res.writeHead(status, { 'content-type': 'application/xml' });
      res.end(`<?xml version="1.0" encoding="UTF-8"?>\n${text}`);
    };
    const found = () => {
      const object = objects.get(key);
      if (!object) throw new S3Error(404, 'NoSuchKey', 'The specified key does not exist.');
      return object;
    };
    const upload = () => {
      const u = this.uploads.get(q.get('uploadId') ?? '');
      if (!u || u.bucket !== bucket || u.key !== key) throw new S3Error(404, 'NoSuchUpload', 'The specified upload does not exist.');
      return u;
    };
    switch (op) {
      case 'PutObject': {
        if (req.headers['x-amz-copy-source']) throw new S3Error(501, 'NotImplemented', 'The fake does not copy objects.');
        const object = { body, etag: md5(body), lastModified: new Date() };
        objects.set(key, object);
        res.writeHead(200, { etag: object.etag });
        return void res.end();
      }
      case 'GetObject':
      case 'HeadObject': {
        const object = found();
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': object.body.length,
          etag: object.etag,
          'last-modified': object.lastModified.toUTCString(),
        });
        return void res.end(op === 'GetObject' ? object.body : undefined);
      }
      case 'DeleteObject':
        objects.delete(key);
        res.writeHead(204);
        return void res.end();
      case 'DeleteObjects': {
        const text = body.toString('utf8');
        const keys = [...text.matchAll(/<Key>([\s\S]*?)<\/Key>/g)].map((m) => xmlUnescape(m[1]));
        if (keys.length > 1000) throw new S3Error(400, 'MalformedXML', 'At most 1000 keys per request.');
        for (const k of keys) objects.delete(k);
        const quiet = /<Quiet>true<\/Quiet>/.test(text);
        return xml(200, `<DeleteResult>${quiet ? '' : keys.map((k) => `<Deleted><Key>${xmlEscape(k)}</Key></Deleted>`).join('')}</DeleteResult>`);
      }
      case 'ListObjectsV2': {
        if (q.has('encoding-type') || q.has('delimiter')) throw new S3Error(501, 'NotImplemented', 'The fake lists without encoding-type or delimiter.');
        const prefix = q.get('prefix') ?? '';
        const token = q.get('continuation-token');
        const after = token ? Buffer.from(token, 'base64url').toString('utf8') : (q.get('start-after') ?? '');
        const limit = Math.min(Number(q.get('max-keys') ?? 1000), this.maxKeys);
        const matching = [...objects.keys()].filter((k) => k.startsWith(prefix) && k > after).sort();
        const page = matching.slice(0, limit);
        const truncated = matching.length > page.length;
        const contents = page
          .map((k) => {
            const o = objects.get(k)!;
            return `<Contents><Key>${xmlEscape(k)}</Key><LastModified>${o.lastModified.toISOString()}</LastModified><ETag>${xmlEscape(o.etag)}</ETag><Size>${o.body.length}</Size><StorageClass>STANDARD</StorageClass></Contents>`;
          })
          .join('');
        const next = truncated ? `<NextContinuationToken>${Buffer.from(page[page.length - 1]).toString('base64url')}</NextContinuationToken>` : '';
        return xml(
          200,
          `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${xmlEscape(bucket)}</Name><Prefix>${xmlEscape(prefix)}</Prefix>` +
            `<KeyCount>${page.length}</KeyCount><MaxKeys>${limit}</MaxKeys><IsTruncated>${truncated}</IsTruncated>` +
            `${token ? `<ContinuationToken>${token}</ContinuationToken>` : ''}${next}${contents}</ListBucketResult>`,
        );
      }
      case 'CreateMultipartUpload': {
        const id = randomUUID();
        this.uploads.set(id, { bucket, key, parts: new Map() });
        return xml(
          200,
          `<InitiateMultipartUploadResult><Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(key)}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`,
        );
      }
      case 'UploadPart': {
        const n = Number(q.get('partNumber'));
        if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new S3Error(400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000.');
        const part = { body, etag: md5(body) };
        upload().parts.set(n, part);
        res.writeHead(200, { etag: part.etag });
        return void res.end();
      }
      case 'CompleteMultipartUpload': {
        const u = upload();
        const listed = [...body.toString('utf8').matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map(([, part]) => ({
          n: Number(/<PartNumber>(\d+)<\/PartNumber>/.exec(part)?.[1]),
          etag: xmlUnescape(/<ETag>([\s\S]*?)<\/ETag>/.exec(part)?.[1] ?? ''),
        }));
        if (listed.length === 0) throw new S3Error(400, 'MalformedXML', 'No parts listed.');
        const parts = listed.map(({ n, etag }, i) => {
          const part = u.parts.get(n);
          if (!part || part.etag !== etag) throw new S3Error(400, 'InvalidPart', `Part ${n} was not uploaded, or its ETag differs.`);
          if (i > 0 && n <= listed[i - 1].n) throw new S3Error(400, 'InvalidPartOrder', 'Parts must be listed in ascending order.');
          if (i < listed.length - 1 && part.body.length < MIN_PART_SIZE) throw new S3Error(400, 'EntityTooSmall', `Part ${n} is smaller than 5 MiB.`);
          return part.body;
        });
        const whole = Buffer.concat(parts);
        const etag = `"${createHash('md5')
          .update(Buffer.concat(listed.map(({ n }) => Buffer.from(u.parts.get(n)!.etag.slice(1, -1), 'hex'))))
          .digest('hex')}-${listed.length}"`;
        objects.set(key, { body: whole, etag, lastModified: new Date() });
        this.uploads.delete(q.get('uploadId')!);
        return xml(
          200,
          `<CompleteMultipartUploadResult><Location>${xmlEscape(`${this.url}/${bucket}/${key}`)}</Location><Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(key)}</Key><ETag>${xmlEscape(etag)}</ETag></CompleteMultipartUploadResult>`,
        );
      }
      case 'AbortMultipartUpload':
        upload();
        this.uploads.delete(q.get('uploadId')!);
        res.writeHead(204);
        return void res.end();
      default:
        throw new S3Error(501, 'NotImplemented', `${req.method} ${req.url} is not something the fake S3 does.`);
    }
  }

  /** AWS Signature Version 4 over the request as received, with this server's one key. */
  private authenticate(req: IncomingMessage): void {
    const deny = (why: string): never => {
      this.unauthorized += 1;
      throw new S3Error(403, why.startsWith('signature') ? 'SignatureDoesNotMatch' : 'AccessDenied', why);
    };
    const auth = req.headers.authorization ?? '';
    const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
    if (!m) return deny('no AWS4-HMAC-SHA256 Authorization header');
    const [, keyId, date, region, signedHeaders, signature] = m;
    if (keyId !== this.accessKeyId) return deny(`unknown access key id ${keyId}`);
    if (region !== this.region) return deny(`the request is signed for region ${region}, not ${this.region}`);
    const amzDate = String(req.headers['x-amz-date'] ?? '');
    if (!amzDate.startsWith(date)) return deny('x-amz-date does not match the credential scope');
    const names = signedHeaders.split(';');
    if (!names.includes('host') || !names.includes('x-amz-date')) return deny('host and x-amz-date must be signed');

    const url = req.url ?? '/';
    const [rawPath, rawQuery = ''] = url.split('?', 2);
    const query = rawQuery
      .split('&')
      .filter(Boolean)
      .map((pair) => {
        const [k, v = ''] = pair.split('=', 2).map((s) => decodeURIComponent(s.replace(/\+/g, '%20')));
        return [uriEncode(k), uriEncode(v)] as const;
      })
      .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`)
      .join('&');
    const headers = names.map((name) => {
      const value = req.headers[name];
      return `${name}:${(Array.isArray(value) ? value.join(',') : (value ?? '')).trim().replace(/\s+/g, ' ')}\n`;
    });
    const canonical = [req.method, rawPath, query, headers.join(''), signedHeaders, String(req.headers['x-amz-content-sha256'] ?? '')].join('\n');
    const stringToSign = ['AWS4-HMAC-SHA256', amzDate, `${date}/${region}/s3/aws4_request`, sha256(canonical)].join('\n');
    const signingKey = hmac(hmac(hmac(hmac(`AWS4${this.secretAccessKey}`, date), region), 's3'), 'aws4_request');
    const expected = hmac(signingKey, stringToSign);
    if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) deny('signature does not match');
  }

  /** The payload hash the signature covers must be the body's, and any checksum header must hold. */
  private checkPayload(req: IncomingMessage, body: Buffer): void {
    const declared = String(req.headers['x-amz-content-sha256'] ?? '');
    if (declared.startsWith('STREAMING-')) throw new S3Error(501, 'NotImplemented', `the fake does not decode ${declared} (aws-chunked) bodies`);
    if (declared !== 'UNSIGNED-PAYLOAD' && declared !== sha256(body))
      throw new S3Error(400, 'XAmzContentSHA256Mismatch', 'The provided x-amz-content-sha256 header does not match what was computed.');
    const md5Header = req.headers['content-md5'];
    if (md5Header && md5Header !== createHash('md5').update(body).digest('base64'))
      throw new S3Error(400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.');
    const crc = req.headers['x-amz-checksum-crc32'];
    if (crc && typeof zlib.crc32 === 'function') {
      const actual = Buffer.alloc(4);
      actual.writeUInt32BE(zlib.crc32(body) >>> 0);
      if (crc !== actual.toString('base64')) throw new S3Error(400, 'BadDigest', 'The CRC32 you specified did not match the calculated checksum.');
    }
  }
}

function operation(method: string, key: string, q: URLSearchParams): string {
  if (!key) {
    if (method === 'GET' && q.get('list-type') === '2') return 'ListObjectsV2';
    if (method === 'POST' && q.has('delete')) return 'DeleteObjects';
    return `${method} bucket`;
  }
  if (method === 'PUT') return q.has('uploadId') ? 'UploadPart' : 'PutObject';
  if (method === 'GET') return 'GetObject';
  if (method === 'HEAD') return 'HeadObject';
  if (method === 'DELETE') return q.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
  if (method === 'POST') return q.has('uploads') ? 'CreateMultipartUpload' : q.has('uploadId') ? 'CompleteMultipartUpload' : 'POST object';
  return `${method} object`;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    req.on('aborted', () => reject(new Error('the client went away mid-request')));
  });
}
