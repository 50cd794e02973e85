// Rhone's plans, what each includes, and what overage costs: the one place these live. Limits
// enforcement, the usage API, `npm run stripe:setup` (prices and their included tiers) and the
// dashboard all read them from here.
import type { Plan } from '../models/Team.ts';
import type { MeterName } from '../lib/api-types.ts';

/** What Rhone meters. Stored in usage_records in these units; Stripe meters take whole numbers. */
export const METERS = {
  machine_seconds: { label: 'Machine hours', recordUnit: 'second', stripeEventName: 'rhone_machine_seconds', stripeUnit: 'second', perStripeUnit: 1 },
  bandwidth: { label: 'Bandwidth', recordUnit: 'byte', stripeEventName: 'rhone_bandwidth_mb', stripeUnit: 'MB', perStripeUnit: 1_000_000 },
  builds: { label: 'Builds', recordUnit: 'build', stripeEventName: 'rhone_builds', stripeUnit: 'build', perStripeUnit: 1 },
} as const satisfies Record<MeterName, object>; // the API's list of meters (api-types.ts), shared with the dashboard
export type Meter = keyof typeof METERS;
export const METER_NAMES = Object.keys(METERS) as Meter[];

const HOUR = 3600;
const GB = 1_000_000_000;

export interface PlanDefinition {
  name: string;
  /** Monthly base price in cents; null: agreed per contract (enterprise). */
  priceCents: number | null;
  /** Included per billing period, in record units; null: unlimited (or per contract). */
  included: Record<Meter, number | null>;
  /**
   * Overage price in cents per record unit (fractions allowed); null: no overage, the quota is a
   * hard limit (free), or nothing is charged beyond it.
   */
  overageCentsPerUnit: Record<Meter, number | null>;
  /** Team members, including owners; null: unlimited. */
  maxMembers: number | null;
  customDomains: boolean;
  wildcardDomains: boolean;
  /** Distinct regions a team's apps may use; null: any number. */
  maxRegions: number | null;
}

// $0.05 per machine hour, $0.02 per GB, $0.02 per build, in cents per record unit.
const MACHINE_SECOND_CENTS = 5 / HOUR;
const BYTE_CENTS = 2 / GB;
const BUILD_CENTS = 2;

export const PLAN_DEFINITIONS: Record<Plan, PlanDefinition> = {
  free: {
    name: 'Free',
    priceCents: 0,
    included: { machine_seconds: 100 * HOUR, bandwidth: 10 * GB, builds: 50 },
    overageCentsPerUnit: { machine_seconds: null, bandwidth: null, builds: null },
    maxMembers: 1,
    customDomains: false,
    wildcardDomains: false,
    maxRegions: 1,
  },
  starter: {
    name: 'Starter',
    priceCents: 2000,
    included: { machine_seconds: 500 * HOUR, bandwidth: 100 * GB, builds: 200 },
    overageCentsPerUnit: { machine_seconds: MACHINE_SECOND_CENTS, bandwidth: BYTE_CENTS, builds: BUILD_CENTS },
    maxMembers: 5,
    customDomains: true,
    wildcardDomains: false,
    maxRegions: 1,
  },
  pro: {
    name: 'Pro',
    priceCents: 10000,
    included: { machine_seconds: 2000 * HOUR, bandwidth: 500 * GB, builds: null },
    overageCentsPerUnit: { machine_seconds: MACHINE_SECOND_CENTS, bandwidth: BYTE_CENTS, builds: null },
    maxMembers: null,
    customDomains: true,
    wildcardDomains: true,
    maxRegions: null,
  },
  enterprise: {
    name: 'Enterprise',
    priceCents: null,
    included: { machine_seconds: null, bandwidth: null, builds: null },
    overageCentsPerUnit: { machine_seconds: null, bandwidth: null, builds: null },
    maxMembers: null,
    customDomains: true,
    wildcardDomains: true,
    maxRegions: null,
  },
};

/** Plans a team can move to by itself (enterprise is agreed with us). */
export const SELF_SERVE_PLANS = ['free', 'starter', 'pro'] as const satisfies readonly Plan[];

/** How long a team may stay past due before new deploys are refused. */
export const PAST_DUE_GRACE_DAYS = 7;

/** The alert thresholds, in percent of a quota or of the spend cap. */
export const ALERT_THRESHOLDS = [75, 90, 100] as const;

/** The overage cost in cents of `used` record units of `meter` on `plan` (0 within the quota). */
export function overageCents(plan: Plan, meter: Meter, used: number): number {
  const def = PLAN_DEFINITIONS[plan];
  const price = def.overageCentsPerUnit[meter];
  const included = def.included[meter];
  if (price === null || included === null) return 0;
  return Math.max(0, used - included) * price;
}

/** Self-serve plans from cheapest to dearest: the order in which a limit is lifted. */
const UPGRADE_ORDER: readonly Plan[] = [...SELF_SERVE_PLANS, 'enterprise'];

/**
 * The cheapest plan above `plan` whose definition satisfies `lifts` (e.g. more members), for
 * messages that say how to lift a limit; null when no plan does.
 */
export function planThatLifts(plan: Plan, lifts: (def: PlanDefinition) => boolean): Plan | null {
  return UPGRADE_ORDER.slice(UPGRADE_ORDER.indexOf(plan) + 1).find((p) => lifts(PLAN_DEFINITIONS[p])) ?? null;
}

/** Whether a meter's quota is a hard limit on this plan (no overage price; free). */
export function isHardQuota(plan: Plan, meter: Meter): boolean {
  const def = PLAN_DEFINITIONS[plan];
  return def.included[meter] !== null && def.overageCentsPerUnit[meter] === null;
}

/** A quantity in record units, as people read it: "12.5 machine hours", "3.2 GB", "50 builds". */
export function formatQuantity(meter: Meter, quantity: number): string {
  const round = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));
  if (meter === 'machine_seconds') return `${round(quantity / HOUR)} machine hours`;
  if (meter === 'bandwidth') return `${round(quantity / GB)} GB`;
  return `${quantity} builds`;
}
