// Identifiers shaped like Fly's: machine ids are 14 hex characters, versions and event ids are
// 26-character ULIDs (time-ordered, so sorting them sorts by creation).
import { randomBytes } from 'node:crypto';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

export function machineId(): string {
  return randomBytes(7).toString('hex');
}

export function appId(): string {
  return randomBytes(8).toString('hex');
}

let lastTime = 0;
let lastRandom: number[] = [];

/** A ULID; monotonic within one millisecond so two versions made together still sort in order. */
export function ulid(now = Date.now()): string {
  let random: number[];
  if (now === lastTime) {
    random = [...lastRandom];
    for (let i = random.length - 1; i >= 0; i--) {
      random[i] = (random[i] + 1) % 32;
      if (random[i] !== 0) break;
    }
  } else {
    random = [...randomBytes(16)].map((b) => b % 32);
  }
  lastTime = now;
  lastRandom = random;
  let time = '';
  for (let t = now, i = 0; i < 10; i++, t = Math.floor(t / 32)) time = CROCKFORD[t % 32] + time;
  return time + random.map((n) => CROCKFORD[n]).join('');
}

export function nonce(): string {
  return randomBytes(16).toString('hex');
}

const ADJECTIVES = ['quiet', 'bold', 'misty', 'rapid', 'silent', 'gentle', 'bright', 'lively', 'calm', 'frosty'];
const NOUNS = ['river', 'delta', 'meadow', 'harbor', 'summit', 'valley', 'glacier', 'canyon', 'forest', 'island'];

/** A machine name like Fly's generated ones ("quiet-river-4821"). */
export function machineName(): string {
  const bytes = randomBytes(4);
  return `${ADJECTIVES[bytes[0] % ADJECTIVES.length]}-${NOUNS[bytes[1] % NOUNS.length]}-${1000 + (bytes.readUInt16BE(2) % 9000)}`;
}
