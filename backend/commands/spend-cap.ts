// The owner's monthly cap on overage: at the cap, new deploys are refused (billing/limits.ts) and
// the owners are alerted at 75%, 90% and 100% of it (billing/alerts.ts).
import type { Knex } from 'knex';
import { Team } from '../models/index.ts';
import type { Actor } from '../middleware/auth.ts';
import { recordAudit } from './audit.ts';
import { transaction } from '../lib/transaction.ts';
import { checkAlerts } from '../billing/alerts.ts';

export async function setSpendCap(knex: Knex, actor: Actor, team: Team, capCents: number | null): Promise<Team> {
  const updated = await transaction(knex, async (trx) => {
    const before = await Team.query(trx).findById(team.id).forUpdate().throwIfNotFound();
    const row = await Team.query(trx).patchAndFetchById(team.id, { spendCapCents: capCents });
    await recordAudit(trx, {
      teamId: team.id,
      actor,
      action: 'billing.spend_cap_set',
      subjectType: 'team',
      subjectId: team.id,
      data: { from: before.spendCapCents, to: capCents },
    });
    return row;
  });
  // A cap set below what the overage already is alerts at once.
  await checkAlerts(knex, [team.id]);
  return updated;
}
