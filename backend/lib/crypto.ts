// AES-256-GCM for env var values and the session cookie. Every ciphertext names the key that
// wrote it, so keys can be rotated: the first key encrypts, any listed key decrypts.
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { EncryptionKey } from '../config.ts';

const IV_BYTES = 12;
const TAG_BYTES = 16;
/** What encrypt() adds to a plaintext: the sealed data is exactly this much longer. */
export const SEAL_OVERHEAD_BYTES = IV_BYTES + TAG_BYTES;

export interface Sealed {
  keyId: string;
  /** iv | tag | ciphertext */
  data: Buffer;
}

export function encrypt(plaintext: string | Buffer, keys: EncryptionKey[], aad?: string): Sealed {
  const { id, key } = keys[0];
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  if (aad) cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { keyId: id, data: Buffer.concat([iv, cipher.getAuthTag(), body]) };
}

export class DecryptionError extends Error {}

export function decrypt(sealed: Sealed, keys: EncryptionKey[], aad?: string): Buffer {
  const entry = keys.find((k) => k.id === sealed.keyId);
  if (!entry) throw new DecryptionError(`no encryption key with id "${sealed.keyId}" is configured`);
  if (sealed.data.length < IV_BYTES + TAG_BYTES) throw new DecryptionError('ciphertext is truncated');
  const decipher = createDecipheriv('aes-256-gcm', entry.key, sealed.data.subarray(0, IV_BYTES));
  if (aad) decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(sealed.data.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(sealed.data.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
  } catch {
    throw new DecryptionError('ciphertext failed authentication');
  }
}

/** A 32-byte key derived from a secret for one purpose, so one secret never keys two things. */
export function deriveKey(secret: string, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'rhone', purpose, 32));
}

export function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}
