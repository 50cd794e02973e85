import type { Knex } from 'knex';
import { AuditEvent } from '../models/index.ts';
import type { Actor } from '../middleware/auth.ts';
import { tag } from '../lib/cache.ts';
import { invalidateOnCommit } from '../lib/transaction.ts';

export interface AuditEntry {
  teamId: string;
  actor: Actor | null;
  action: string;
  subjectType: string;
  subjectId?: string | null;
  /** Never a secret: names of env vars, never values. */
  data?: Record<string, unknown>;
}

/**
 * Every write that changes a team (its settings, members or apps) records an event here, so this
 * is also where the team's cached reads are invalidated, once the write has committed.
 */
export async function recordAudit(trx: Knex.Transaction | Knex, entry: AuditEntry): Promise<void> {
  await AuditEvent.query(trx).insert({
    teamId: entry.teamId,
    actorId: entry.actor?.user.id ?? null,
    actorLogin: entry.actor?.user.login ?? null,
    action: entry.action,
    subjectType: entry.subjectType,
    subjectId: entry.subjectId ?? null,
    data: { ...entry.data, ...(entry.actor?.via === 'token' ? { via: 'api_token' } : {}) },
  });
  await invalidateOnCommit(trx, [tag.team(entry.teamId)]);
}
