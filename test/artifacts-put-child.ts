// Run by artifacts.test.ts as a separate process that the test SIGKILLs in the middle of a put.
// Usage: node --import tsx test/artifacts-put-child.ts <key> <dir>, with ARTIFACT_STORE in the
// environment: {"local": "<root>"} or {"s3": <S3Settings>}.
import { LocalArtifactStore } from '../backend/source/artifacts.ts';
import { S3ArtifactStore } from '../backend/source/s3-artifacts.ts';
import type { S3Settings } from '../backend/config.ts';

const [key, dir] = process.argv.slice(2);
const spec = JSON.parse(process.env.ARTIFACT_STORE ?? '{}') as { local?: string; s3?: S3Settings };
const store = spec.s3 ? new S3ArtifactStore(spec.s3) : new LocalArtifactStore(spec.local);
await store.putDir(key, dir);
process.exit(0);
