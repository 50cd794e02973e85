// Transactions that invalidate the read caches (lib/cache.ts) once they have committed.
import type { Knex } from 'knex';
import { invalidate } from './cache.ts';
import { logger } from './logger.ts';

/** Tags to invalidate when each transaction started by transaction() commits. */
const pending = new WeakMap<Knex.Transaction, Set<string>>();

type Transactor = Knex.Transaction & { parentTransaction?: Transactor };

/** The outermost transaction: a savepoint's commit is not the commit that makes a write visible. */
function outermost(trx: Transactor): Transactor {
  let t = trx;
  while (t.parentTransaction) t = t.parentTransaction;
  return t;
}

/**
 * knex.transaction(fn), and after the COMMIT (not after a rollback) awaits invalidate() of every
 * tag registered with invalidateOnCommit() during it, so the caller's response leaves only once
 * every cache has been told.
 */
export async function transaction<T>(knex: Knex | Knex.Transaction, fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  // Inside another transaction this is a savepoint: invalidateOnCommit() finds the outermost
  // transaction by itself and waits for its commit.
  if (knex.isTransaction) return knex.transaction(fn);
  const tags = new Set<string>();
  const result = await knex.transaction(async (trx) => {
    pending.set(trx, tags);
    return fn(trx);
  });
  if (tags.size > 0) await invalidate([...tags]);
  return result;
}

/**
 * Says that a write made through `db` changes what the tags cover. In a transaction() the tags are
 * invalidated after its commit; outside any transaction (the write has committed) right now. In a
 * transaction from plain knex.transaction() they are evicted in this process as it commits, before
 * its caller resumes, and published without being awaited: prefer transaction().
 */
export async function invalidateOnCommit(db: Knex | Knex.Transaction, tags: readonly string[]): Promise<void> {
  if (!db.isTransaction) return invalidate(tags);
  const root = outermost(db as Transactor);
  const registered = pending.get(root);
  if (registered) {
    for (const t of tags) registered.add(t);
    return;
  }
  root.executionPromise.then(
    () => invalidate(tags).catch((err: unknown) => logger().error({ err, tags }, 'cache invalidation failed')),
    () => undefined, // rolled back: nothing changed
  );
}
