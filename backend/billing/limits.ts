// Plan limits, enforced where they bite. Each check throws a PlanLimitError (402 plan_limit, or
// spend_cap) whose message names the limit, what the team has used, and how to lift it. The
// numbers come from plans.ts; usage from usage.ts. Checks re-read the team, so a plan change
// (a Stripe webhook) counts at once even when the caller holds a cached team.
import type { Knex } from 'knex';
import { AppError } from '../lib/errors.ts';
import { Team } from '../models/index.ts';
import { ACTIVE_STATUSES, STAGE_STATUS } from '../deployments/pipeline.ts';
import { PLAN_DEFINITIONS, formatQuantity, isHardQuota, planThatLifts, type Meter, type PlanDefinition } from './plans.ts';
import { meterTotals, periodContaining, priceUsage, spendCapReached, type BillingPeriod } from './usage.ts';

export class PlanLimitError extends AppError {
  constructor(
    code: 'plan_limit' | 'spend_cap',
    message: string,
    details: { limit: string; plan: string; used?: number; included?: number | null; upgradeTo?: string | null },
  ) {
    super(402, code, message, details);
  }
}

export type PlanFeature = 'customDomains' | 'wildcardDomains';

const FEATURE_WORDS: Record<PlanFeature, string> = { customDomains: 'Custom domains', wildcardDomains: 'Wildcard domains' };
const WHERE = 'in Usage & billing';

type TeamRef = Pick<Team, 'id'>;

async function fresh(knex: Knex | Knex.Transaction, team: TeamRef): Promise<Team> {
  return Team.query(knex).findById(team.id).throwIfNotFound();
}

function upgradeHint(team: Team, lifts: (def: PlanDefinition) => boolean, what: string): { text: string; upgradeTo: string | null } {
  const to = planThatLifts(team.plan, lifts);
  return to ? { text: `upgrade to ${PLAN_DEFINITIONS[to].name} ${WHERE}${what}`, upgradeTo: to } : { text: `contact us to raise it${what}`, upgradeTo: null };
}

function resetDay(period: BillingPeriod): string {
  return period.end.toLocaleString('en-US', { month: 'long', day: 'numeric', timeZone: 'UTC' });
}

/** A feature the plan may not include (custom domains). Synchronous: the plan is on the team. */
export function assertPlanAllows(team: Pick<Team, 'plan'> & Partial<Pick<Team, 'id'>>, feature: PlanFeature): void {
  const def = PLAN_DEFINITIONS[team.plan];
  if (def[feature]) return;
  const to = planThatLifts(team.plan, (d) => d[feature]);
  const lift = to ? `upgrade to ${PLAN_DEFINITIONS[to].name} ${WHERE} to use them` : 'contact us';
  throw new PlanLimitError('plan_limit', `${FEATURE_WORDS[feature]} are not included in the ${def.name} plan; ${lift}.`, {
    limit: feature,
    plan: team.plan,
    upgradeTo: to,
  });
}

/**
 * Room for one more member: `withInvitations` counts open invitations as seats (when inviting);
 * accepting one counts members only. Call inside the transaction that adds the member or the
 * invitation: it locks the team row so two requests cannot both take the last seat.
 */
export async function assertMemberSeat(trx: Knex.Transaction, teamRef: TeamRef, withInvitations: boolean): Promise<void> {
  const team = await Team.query(trx).findById(teamRef.id).forUpdate().throwIfNotFound();
  const def = PLAN_DEFINITIONS[team.plan];
  if (def.maxMembers === null) return;
  const members = Number((await trx('teamMembers').where({ teamId: team.id }).count<{ count: string }[]>('* as count'))[0].count);
  const invitations = withInvitations
    ? Number((await trx('invitations').where({ teamId: team.id }).where('expiresAt', '>', new Date()).count<{ count: string }[]>('* as count'))[0].count)
    : 0;
  if (members + invitations < def.maxMembers) return;
  const has = `${members} member${members === 1 ? '' : 's'}${invitations ? ` and ${invitations} open invitation${invitations === 1 ? '' : 's'}` : ''}`;
  const hint = upgradeHint(team, (d) => d.maxMembers === null || d.maxMembers > def.maxMembers!, ' for more members');
  throw new PlanLimitError(
    'plan_limit',
    `The ${def.name} plan includes ${def.maxMembers} member${def.maxMembers === 1 ? '' : 's'} and team "${team.slug}" has ${has}; ${hint.text}${invitations ? ', or revoke an open invitation' : ''}.`,
    { limit: 'members', plan: team.plan, used: members + invitations, included: def.maxMembers, upgradeTo: hint.upgradeTo },
  );
}

/** An app in `region`: below Pro, all of a team's apps share one region. `appId`: the app being moved. */
export async function assertRegionAllowed(knex: Knex | Knex.Transaction, teamRef: TeamRef, region: string, appId?: string): Promise<void> {
  const team = await fresh(knex, teamRef);
  const def = PLAN_DEFINITIONS[team.plan];
  if (def.maxRegions === null) return;
  const q = knex('apps').where({ teamId: team.id }).distinct('region').orderBy('region');
  if (appId) q.whereNot({ id: appId });
  const regions = ((await q) as { region: string }[]).map((r) => r.region);
  if (regions.includes(region) || regions.length < def.maxRegions) return;
  const hint = upgradeHint(team, (d) => d.maxRegions === null || d.maxRegions > def.maxRegions!, ' to run apps in more regions');
  throw new PlanLimitError(
    'plan_limit',
    `The ${def.name} plan runs a team's apps in ${def.maxRegions === 1 ? 'one region' : `${def.maxRegions} regions`}, and team "${team.slug}" already uses ${regions.join(', ')}; choose ${regions.length === 1 ? regions[0] : 'one of those'}, or ${hint.text}.`,
    { limit: 'regions', plan: team.plan, used: regions.length, included: def.maxRegions, upgradeTo: hint.upgradeTo },
  );
}

/** A deployment in these has not reached the deploy stage: its build, if any, has not ended. */
const BEFORE_BUILT = ACTIVE_STATUSES.filter((s) => s !== STAGE_STATUS.deploy);

/** Builds started but not yet counted (a build is recorded when it ends). */
async function buildsInFlight(knex: Knex, teamId: string, exceptQueuedOf?: string): Promise<number> {
  const q = knex('deployments as d')
    .join('apps as a', 'a.id', 'd.app_id')
    .where('a.team_id', teamId)
    .whereIn('d.status', BEFORE_BUILT)
    .whereNull('d.image')
    .whereNull('d.rollback_of');
  // A new deploy supersedes the app's queued one: that one will never build.
  if (exceptQueuedOf) q.whereNot((w) => w.where('d.app_id', exceptQueuedOf).where('d.status', 'queued'));
  const [{ count }] = await q.count<{ count: string }[]>('* as count');
  return Number(count);
}

export interface DeployCheck {
  /** A new build (a deploy or push); a rollback reuses an image and builds nothing. */
  build: boolean;
  /** The app being deployed: its own queued deploy is about to be superseded. */
  appId?: string;
  now?: Date;
}

/**
 * May the team start a deploy? Refused when a hard quota of the free plan is used up (builds,
 * for a build; machine hours and bandwidth, for any deploy), or when the overage reached the
 * owner's spend cap. Running apps are never stopped: this only refuses new work.
 */
export async function assertCanDeploy(knex: Knex, teamRef: TeamRef, check: DeployCheck): Promise<void> {
  const team = await fresh(knex, teamRef);
  const now = check.now ?? new Date();
  const period = periodContaining(now);
  const totals = await meterTotals(knex, team.id, period);
  const def = PLAN_DEFINITIONS[team.plan];
  const until = `wait until ${resetDay(period)}, when the quota resets`;
  const refuse = (meter: Meter, used: number, what: string) => {
    const included = def.included[meter]!;
    const hint = upgradeHint(team, (d) => d.included[meter] === null || d.included[meter]! > included || d.overageCentsPerUnit[meter] !== null, '');
    throw new PlanLimitError(
      'plan_limit',
      `Your team used ${formatQuantity(meter, used).replace(/ .*/, '')} of the ${formatQuantity(meter, included)} the ${def.name} plan includes this month, so ${what}; ${hint.text}, or ${until}.`,
      { limit: meter, plan: team.plan, used, included, upgradeTo: hint.upgradeTo },
    );
  };
  if (check.build && isHardQuota(team.plan, 'builds')) {
    const used = totals.builds + (await buildsInFlight(knex, team.id, check.appId));
    if (used >= def.included.builds!) refuse('builds', used, 'new builds are refused');
  }
  for (const meter of ['machine_seconds', 'bandwidth'] as const) {
    if (isHardQuota(team.plan, meter) && totals[meter] >= def.included[meter]!) {
      refuse(meter, totals[meter], 'new deploys are refused (running apps keep running)');
    }
  }
  const overage = priceUsage(team, totals).overageCents;
  if (spendCapReached(team.spendCapCents, overage)) {
    const dollars = (c: number) => `$${(c / 100).toFixed(2)}`;
    throw new PlanLimitError(
      'spend_cap',
      `Your team's overage this month (${dollars(overage)}) reached the ${dollars(team.spendCapCents!)} spend cap an owner set, so new deploys are refused (running apps keep running); an owner can raise or remove the cap ${WHERE}, or ${until}.`,
      { limit: 'spend_cap', plan: team.plan, used: Math.round(overage), included: team.spendCapCents },
    );
  }
}
