// Quota and spend-cap alerts: at 75%, 90% and 100% of each included quota and of the owner's
// spend cap, once per period each, an in-app notification for the team's owners and an audit
// event. "Once" is the notifications' (team, dedupe_key) unique index: the audit event is written
// only for a notification that was actually inserted.
import type { Knex } from 'knex';
import { Team } from '../models/index.ts';
import { recordAudit } from '../commands/audit.ts';
import { transaction } from '../lib/transaction.ts';
import { ALERT_THRESHOLDS, METERS, METER_NAMES, PLAN_DEFINITIONS, formatQuantity, isHardQuota } from './plans.ts';
import { meterTotalsOf, periodContaining, priceUsage, spendCapPercent, type BillingPeriod, type MeterTotals } from './usage.ts';

interface Alert {
  teamId: string;
  kind: 'quota' | 'spend_cap';
  dedupeKey: string;
  title: string;
  body: string;
  data: Record<string, unknown>;
}

const dollars = (cents: number) => `$${(cents / 100).toFixed(2)}`;

/** The alerts a team's totals call for (all thresholds reached, sent before or not). */
export function alertsFor(team: Pick<Team, 'id' | 'plan' | 'spendCapCents'>, totals: MeterTotals, period: BillingPeriod): Alert[] {
  const def = PLAN_DEFINITIONS[team.plan];
  const alerts: Alert[] = [];
  for (const meter of METER_NAMES) {
    const included = def.included[meter];
    if (!included) continue;
    const percent = (totals[meter] / included) * 100;
    for (const threshold of ALERT_THRESHOLDS) {
      if (percent < threshold) continue;
      const label = METERS[meter].label;
      const consequence =
        threshold < 100
          ? ''
          : isHardQuota(team.plan, meter)
            ? meter === 'builds'
              ? ' New builds are refused until the quota resets or you upgrade.'
              : ' New deploys are refused until the quota resets or you upgrade; running apps keep running.'
            : ' Usage beyond it is billed as overage.';
      alerts.push({
        teamId: team.id,
        kind: 'quota',
        dedupeKey: `quota:${meter}:${period.key}:${threshold}`,
        title: `${label}: ${threshold}% of the ${def.name} plan's quota used`,
        body: `Your team has used ${formatQuantity(meter, totals[meter])} of the ${formatQuantity(meter, included)} included in ${period.key}.${consequence}`,
        data: { meter, threshold, period: period.key, used: totals[meter], included },
      });
    }
  }
  const overage = priceUsage(team, totals).overageCents;
  const capPercent = spendCapPercent(team.spendCapCents, overage);
  for (const threshold of ALERT_THRESHOLDS) {
    if (capPercent === null || capPercent < threshold || (team.spendCapCents === 0 && overage === 0)) continue;
    alerts.push({
      teamId: team.id,
      kind: 'spend_cap',
      dedupeKey: `spend_cap:${period.key}:${team.spendCapCents}:${threshold}`,
      title: `Spend cap: ${threshold}% reached`,
      body: `Overage this month is ${dollars(overage)} of your ${dollars(team.spendCapCents!)} cap.${threshold >= 100 ? ' New deploys are refused until an owner raises the cap or the month ends; running apps keep running.' : ''}`,
      data: { threshold, period: period.key, overageCents: Math.round(overage), capCents: team.spendCapCents },
    });
  }
  return alerts;
}

/**
 * Checks the teams' usage this period and sends the alerts not sent yet. Returns the dedupe keys
 * of the alerts sent now, per team.
 */
export async function checkAlerts(knex: Knex, teamIds: string[], now = new Date()): Promise<{ teamId: string; key: string }[]> {
  if (teamIds.length === 0) return [];
  const period = periodContaining(now);
  const [teams, totals] = await Promise.all([
    Team.query(knex).whereRaw('id = any(?::uuid[])', [teamIds]).select('id', 'plan', 'spendCapCents'),
    meterTotalsOf(knex, teamIds, period),
  ]);
  const alerts = teams.flatMap((t) => alertsFor(t, totals.get(t.id)!, period));
  if (alerts.length === 0) return [];
  // Notification and audit event together, or neither: a retry then sends what is missing.
  return transaction(knex, async (trx) => {
    const inserted = (await trx('notifications')
      .insert(
        alerts.map((a) => ({
          teamId: a.teamId,
          userId: null,
          minRole: 'owner',
          kind: a.kind,
          title: a.title,
          body: a.body,
          data: JSON.stringify(a.data),
          dedupeKey: a.dedupeKey,
        })),
      )
      .onConflict(['team_id', 'dedupe_key'])
      .ignore()
      .returning(['teamId', 'dedupeKey'])) as { teamId: string; dedupeKey: string }[];
    const sent = new Set(inserted.map((r) => `${r.teamId} ${r.dedupeKey}`));
    for (const a of alerts) {
      if (!sent.has(`${a.teamId} ${a.dedupeKey}`)) continue;
      await recordAudit(trx, {
        teamId: a.teamId,
        actor: null,
        action: a.kind === 'quota' ? 'usage.quota_alert' : 'usage.spend_cap_alert',
        subjectType: 'team',
        subjectId: a.teamId,
        data: a.data,
      });
    }
    return inserted.map((r) => ({ teamId: r.teamId, key: r.dedupeKey }));
  });
}
