// A map of cached values, each with the tags that say what it was read from. Evicting a tag drops
// every value read from it. Process-wide coordination (who evicts when) is in cache.ts.

interface Entry<V> {
  value: V;
  expiresAt: number;
  tags: readonly string[];
}

export interface CacheOptions {
  /** When a new key would exceed this, everything is dropped: simple, and bounds memory. */
  maxEntries?: number;
  ttlMs?: number;
  /** The clock entries expire by (Date.now); tests pass their own so time passes when they say. */
  now?: () => number;
}

/** A ticket from begin(): the cache's eviction sequence number when a read from the database began. */
export type Ticket = number;
const NO_TICKET = -1;
/** How many recently evicted tags a cache remembers for set()'s check before it forgets them all. */
const EVICTIONS_REMEMBERED = 10_000;

export class TaggedCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly byTag = new Map<string, Set<string>>();
  /** Counts evictions and resets; a ticket is its value when a read began. */
  private seq = 0;
  /** Tickets older than this are refused: everything before it is forgotten. */
  private floor = 0;
  /** When each recently evicted tag was last evicted (a seq). */
  private readonly evictedAt = new Map<string, number>();
  private serving = false;
  readonly maxEntries: number;
  readonly ttlMs: number;
  private readonly now: () => number;

  constructor(
    readonly name: string,
    options: CacheOptions = {},
  ) {
    this.maxEntries = options.maxEntries ?? 20_000;
    this.ttlMs = options.ttlMs ?? 30_000;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string, now = this.now()): V | undefined {
    if (!this.serving) return undefined;
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= now) {
      this.remove(key, entry);
      return undefined;
    }
    return entry.value;
  }

  /** Call before reading what set() will store. */
  begin(): Ticket {
    return this.serving ? this.seq : NO_TICKET;
  }

  /** Stores unless one of the tags was evicted since begin(); expiresAt caps the TTL (e.g. a session's end). */
  set(key: string, value: V, tags: readonly string[], ticket: Ticket, expiresAt = Infinity): boolean {
    if (!this.serving || ticket < this.floor) return false;
    for (const t of tags) {
      if ((this.evictedAt.get(t) ?? -1) > ticket) return false;
    }
    const now = this.now();
    const until = Math.min(now + this.ttlMs, expiresAt);
    if (!(until > now)) return false;
    const old = this.entries.get(key);
    if (old) this.remove(key, old);
    else if (this.entries.size >= this.maxEntries) this.dropAll();
    this.entries.set(key, { value, expiresAt: until, tags });
    for (const t of tags) {
      let keys = this.byTag.get(t);
      if (!keys) this.byTag.set(t, (keys = new Set()));
      keys.add(key);
    }
    return true;
  }

  /**
   * The cached value, or load()'s, which is stored when it says with which tags. A load that
   * throws or returns no tags stores nothing: misses and errors are never cached.
   */
  async load<T extends V | undefined>(key: string, load: () => Promise<{ value: T; tags?: readonly string[]; expiresAt?: number }>): Promise<V | T> {
    const hit = this.get(key);
    if (hit !== undefined) return hit;
    const ticket = this.begin();
    const { value, tags, expiresAt } = await load();
    if (tags && value !== undefined) this.set(key, value as V, tags, ticket, expiresAt);
    return value;
  }

  evict(tags: Iterable<string>): void {
    this.seq++;
    if (this.evictedAt.size >= EVICTIONS_REMEMBERED) {
      // Forgetting which tags were evicted means refusing every read that began before now.
      this.evictedAt.clear();
      this.floor = this.seq;
    }
    for (const t of tags) {
      this.evictedAt.set(t, this.seq);
      const keys = this.byTag.get(t);
      if (!keys) continue;
      for (const key of [...keys]) {
        const entry = this.entries.get(key);
        if (entry) this.remove(key, entry);
      }
      this.byTag.delete(t);
    }
  }

  /** Drops everything and says whether the cache may serve from now on. */
  reset(serving: boolean): void {
    this.seq++;
    this.floor = this.seq;
    this.evictedAt.clear();
    this.serving = serving;
    this.dropAll();
  }

  private dropAll(): void {
    this.entries.clear();
    this.byTag.clear();
  }

  private remove(key: string, entry: Entry<V>): void {
    this.entries.delete(key);
    for (const t of entry.tags) {
      const keys = this.byTag.get(t);
      if (!keys) continue;
      keys.delete(key);
      if (keys.size === 0) this.byTag.delete(t);
    }
  }
}
