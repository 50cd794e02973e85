// Run by artifacts.test.ts as a separate process that the test SIGKILLs in the middle of a put.
// Usage: node --import tsx test/artifacts-put-child.ts <root> <key> <dir>
import { LocalArtifactStore } from '../backend/source/artifacts.ts';

const [root, key, dir] = process.argv.slice(2);
await new LocalArtifactStore(root).putDir(key, dir);
