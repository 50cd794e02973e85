// A team whose invoice payment failed is past due (invoice.payment_failed; invoice.paid clears it).
// The dashboard shows a banner at once; after PAST_DUE_GRACE_DAYS new deploys are refused, while
// what already runs keeps running.
import type { Knex } from 'knex';
import { Team } from '../models/Team.ts';
import { AppError } from '../lib/errors.ts';
import { PAST_DUE_GRACE_DAYS } from './plans.ts';

const DAY_MS = 86_400_000;

export interface PastDue {
  since: Date;
  /** From when new deploys are refused. */
  deploysRefusedFrom: Date;
  refusingDeploys: boolean;
}

export function pastDueState(team: Pick<Team, 'pastDueSince'>, now = new Date()): PastDue | null {
  if (!team.pastDueSince) return null;
  const since = new Date(team.pastDueSince);
  const deploysRefusedFrom = new Date(since.getTime() + PAST_DUE_GRACE_DAYS * DAY_MS);
  return { since, deploysRefusedFrom, refusingDeploys: now >= deploysRefusedFrom };
}

/** Why a new deploy of this team is refused for an unpaid invoice, or null when it is not. */
export function pastDueRefusal(team: Pick<Team, 'pastDueSince'>, now = new Date()): string | null {
  const state = pastDueState(team, now);
  if (!state?.refusingDeploys) return null;
  return `This team's payment has been failing since ${state.since.toISOString().slice(0, 10)}, more than ${PAST_DUE_GRACE_DAYS} days, so new deploys are paused; running apps keep running. An owner can update the payment method in the billing portal (Billing page), and deploys resume once the invoice is paid.`;
}

/** Throws a 402 `past_due` when the team's new deploys are refused for an unpaid invoice. */
export async function assertNotPastDue(knex: Knex, teamId: string, now = new Date()): Promise<void> {
  const team = await Team.query(knex).findById(teamId).select('pastDueSince').throwIfNotFound();
  const refusal = pastDueRefusal(team, now);
  if (refusal) throw new AppError(402, 'past_due', refusal);
}
