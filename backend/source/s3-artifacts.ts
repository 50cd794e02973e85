// Production's artifact store: S3-compatible object storage (Fly's Tigris), so that the stages of
// a deployment can run on different worker machines (docs/architecture.md).
//
// An artifact is one object, `<key>.tar.gz`, streamed from the directory as it is packed (no
// temporary archive on disk). A reader sees the old artifact or the whole new one: a PUT replaces
// an object atomically, and a multipart upload becomes visible only when it is completed, so a
// writer killed mid-upload leaves at most an unfinished upload behind (a bucket lifecycle rule
// that aborts incomplete multipart uploads cleans those; see docs/production.md).
import { randomUUID } from 'node:crypto';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, NoSuchKey, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { S3Settings } from '../config.ts';
import { ArtifactNotFoundError, assertEmptyOrMissing, checkArtifactKey, type ArtifactStore } from './artifacts.ts';
import { packDir, unpackInto } from './tar-tree.ts';
import { assertTreeWithin, STORE_HINT, type TreeLimits } from './limits.ts';

const SUFFIX = '.tar.gz';

export interface S3ArtifactStoreOptions {
  /** Bytes per multipart part (at least 5 MiB); a smaller artifact is one PUT. */
  partSize?: number;
  /** Caps on what one artifact may hold, checked when it is stored and again as it is unpacked. */
  limits?: TreeLimits;
}

export class S3ArtifactStore implements ArtifactStore {
  readonly client: S3Client;
  readonly bucket: string;
  private readonly partSize?: number;
  private readonly limits?: TreeLimits;

  constructor(settings: S3Settings, options: S3ArtifactStoreOptions = {}) {
    this.bucket = settings.bucket;
    this.partSize = options.partSize;
    this.limits = options.limits;
    this.client = new S3Client({
      region: settings.region,
      endpoint: settings.endpoint,
      forcePathStyle: settings.forcePathStyle,
      credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
      // S3-compatible stores do not all take the SDK's default CRC32 trailers on streamed uploads;
      // send checksums only where S3 requires them (DeleteObjects).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  /** The object that holds the artifact `key`. */
  objectKey(key: string): string {
    return `${key}${SUFFIX}`;
  }

  async putDir(key: string, dir: string): Promise<void> {
    checkArtifactKey(key);
    if (!(await stat(dir)).isDirectory()) throw new Error(`${dir} is not a directory`);
    await assertTreeWithin(dir, this.limits, `the artifact ${key}`, STORE_HINT);
    const body = packDir(dir);
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: this.objectKey(key), Body: body, ContentType: 'application/gzip' },
      partSize: this.partSize,
      queueSize: 2,
      // A failed upload is aborted, so its parts do not linger.
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } finally {
      body.destroy();
    }
  }

  async getDir(key: string, dest: string): Promise<void> {
    checkArtifactKey(key);
    await assertEmptyOrMissing(dest);
    const target = path.resolve(dest);
    await mkdir(path.dirname(target), { recursive: true });
    const object = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) })).catch((err: unknown) => {
      if (isNotFound(err)) throw new ArtifactNotFoundError(key);
      throw err;
    });
    // One GET reads one version of the object, whatever is written meanwhile.
    const staging = `${target}.partial-${randomUUID()}`;
    await mkdir(staging);
    try {
      // The object is input to distrust: its entries and unpacked bytes are counted again here.
      await unpackInto(object.Body as Readable, staging, { limits: this.limits, what: `the artifact ${key}` });
      await rm(target, { recursive: true, force: true }); // empty or missing, checked above
      await rename(staging, target);
    } catch (err) {
      (object.Body as Readable).destroy();
      await rm(staging, { recursive: true, force: true });
      throw err;
    }
  }

  async has(key: string): Promise<boolean> {
    checkArtifactKey(key);
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async remove(prefix: string): Promise<void> {
    checkArtifactKey(prefix);
    await this.deleteObjects([this.objectKey(prefix)]);
    // Page by page: each listing continues after its last key, so deleting what it listed is safe.
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${prefix}/`, ContinuationToken: token }));
      await this.deleteObjects((page.Contents ?? []).flatMap((o) => (o.Key ? [o.Key] : [])));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  private async deleteObjects(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const result = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }));
      const failed = result.Errors ?? [];
      if (failed.length > 0) {
        const first = failed[0];
        throw new Error(
          `Could not delete ${failed.length} artifact object(s) from ${this.bucket}; the first, ${first.Key}: ${first.Code} ${first.Message ?? ''}`.trim(),
        );
      }
    }
  }

  /** Closes the client's connections. */
  destroy(): void {
    this.client.destroy();
  }
}

// GetObject says NoSuchKey; HeadObject has no body to say it in, so the SDK names its 404 NotFound.
function isNotFound(err: unknown): boolean {
  return err instanceof NoSuchKey || (err as { name?: string })?.name === 'NotFound';
}
