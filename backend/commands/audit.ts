import type { Knex } from 'knex';
import { AuditEvent } from '../models/index.ts';
import type { Actor } from '../middleware/auth.ts';

export interface AuditEntry {
  teamId: string;
  actor: Actor | null;
  action: string;
  subjectType: string;
  subjectId?: string | null;
  /** Never a secret: names of env vars, never values. */
  data?: Record<string, unknown>;
}

export async function recordAudit(trx: Knex.Transaction | Knex, entry: AuditEntry): Promise<void> {
  await AuditEvent.query(trx).insert({
    teamId: entry.teamId,
    actorId: entry.actor?.user.id ?? null,
    actorLogin: entry.actor?.user.login ?? null,
    action: entry.action,
    subjectType: entry.subjectType,
    subjectId: entry.subjectId ?? null,
    data: { ...(entry.data ?? {}), ...(entry.actor?.via === 'token' ? { via: 'api_token' } : {}) },
  });
}
