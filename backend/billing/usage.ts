// A team's usage for a billing period, from usage_records (the source of truth): totals per
// meter, per app and per UTC day, what the plan includes, the overage and what it costs so far,
// and a forecast for the whole period. The usage API, the limits, the alerts and the Stripe
// upload all read these numbers from here.
import type { Knex } from 'knex';
import type { Team } from '../models/index.ts';
import { METERS, METER_NAMES, PLAN_DEFINITIONS, overageCents, type Meter } from './plans.ts';

/** A billing period: the calendar month in UTC, [start, end). */
export interface BillingPeriod {
  /** "YYYY-MM". */
  key: string;
  start: Date;
  end: Date;
}

function periodAt(year: number, monthIndex: number): BillingPeriod {
  const start = new Date(Date.UTC(year, monthIndex, 1));
  const end = new Date(Date.UTC(year, monthIndex + 1, 1));
  return { key: start.toISOString().slice(0, 7), start, end };
}

export function periodContaining(at: Date): BillingPeriod {
  return periodAt(at.getUTCFullYear(), at.getUTCMonth());
}

/** "2026-11" → the period; null when it is not a month. */
export function parsePeriod(key: string): BillingPeriod | null {
  const m = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(key);
  return m ? periodAt(Number(m[1]), Number(m[2]) - 1) : null;
}

export type MeterTotals = Record<Meter, number>;

const zero = (): MeterTotals => ({ machine_seconds: 0, bandwidth: 0, builds: 0 });

/** Rows of usage_records summed per meter (and per the given columns), as numbers. */
function addRow(into: MeterTotals, meter: string, quantity: string | number): void {
  if (meter in into) into[meter as Meter] += Number(quantity);
}

/**
 * The team's total per meter in the period, from the running totals insertUsage keeps (one row per
 * meter, however many records the month holds). A record belongs to the period its window starts in.
 */
export async function meterTotals(knex: Knex, teamId: string, period: Pick<BillingPeriod, 'start'>): Promise<MeterTotals> {
  const rows = (await knex('usagePeriodTotals')
    .where({ teamId, period: period.start.toISOString().slice(0, 10) })
    .select('meter', 'quantity')) as { meter: string; quantity: number }[];
  const totals = zero();
  for (const r of rows) addRow(totals, r.meter, r.quantity);
  return totals;
}

/** Period totals of many teams at once (the alert check after a poll). */
export async function meterTotalsOf(knex: Knex, teamIds: string[], period: Pick<BillingPeriod, 'start'>): Promise<Map<string, MeterTotals>> {
  const rows = (await knex('usagePeriodTotals')
    .whereRaw('team_id = any(?::uuid[])', [teamIds])
    .where({ period: period.start.toISOString().slice(0, 10) })
    .select('teamId', 'meter', 'quantity')) as { teamId: string; meter: string; quantity: number }[];
  const out = new Map<string, MeterTotals>(teamIds.map((id) => [id, zero()]));
  for (const r of rows) addRow(out.get(r.teamId)!, r.meter, r.quantity);
  return out;
}

/** The team's total per meter per UTC day in [start, end); what the Stripe upload sends. */
export async function dailyTotals(knex: Knex, teamId: string, period: Pick<BillingPeriod, 'start' | 'end'>): Promise<{ day: string; totals: MeterTotals }[]> {
  const rows = (await knex('usageRecords')
    .where({ teamId })
    .where('windowStart', '>=', period.start)
    .where('windowStart', '<', period.end)
    .groupByRaw(`1, meter`)
    .orderByRaw('1')
    .select(knex.raw(`to_char(window_start at time zone 'UTC', 'YYYY-MM-DD') as day`), 'meter')
    .sum({ quantity: 'quantity' })) as { day: string; meter: string; quantity: string }[];
  const byDay = new Map<string, MeterTotals>();
  for (const r of rows) {
    if (!byDay.has(r.day)) byDay.set(r.day, zero());
    addRow(byDay.get(r.day)!, r.meter, r.quantity);
  }
  return [...byDay].map(([day, totals]) => ({ day, totals }));
}

async function appTotals(knex: Knex, teamId: string, period: BillingPeriod) {
  const rows = (await knex('usageRecords as u')
    .leftJoin('apps as a', 'a.id', 'u.app_id')
    .where('u.team_id', teamId)
    .where('u.window_start', '>=', period.start)
    .where('u.window_start', '<', period.end)
    .groupBy('u.app_id', 'a.slug', 'a.name', 'u.meter')
    .select('u.app_id as appId', 'a.slug as slug', 'a.name as name', 'u.meter as meter')
    .sum({ quantity: 'u.quantity' })) as { appId: string | null; slug: string | null; name: string | null; meter: string; quantity: string }[];
  const byApp = new Map<string, { app: { id: string | null; slug: string | null; name: string | null }; usage: MeterTotals }>();
  for (const r of rows) {
    const key = r.appId ?? '';
    if (!byApp.has(key)) byApp.set(key, { app: { id: r.appId, slug: r.slug, name: r.name }, usage: zero() });
    addRow(byApp.get(key)!.usage, r.meter, r.quantity);
  }
  // Deleted apps (app id gone) come last, under one entry.
  return [...byApp.values()].sort((a, b) => (a.app.slug ?? '\uffff').localeCompare(b.app.slug ?? '\uffff'));
}

export interface MeterReport {
  meter: Meter;
  label: string;
  unit: string;
  used: number;
  /** null: unlimited. */
  included: number | null;
  /** Used beyond the included quantity. */
  overage: number;
  overageCents: number;
  /** Used as a percentage of included; null when unlimited. */
  percent: number | null;
  /** hard: nothing beyond the quota (free); overage: billed beyond it; unlimited. */
  kind: 'hard' | 'overage' | 'unlimited';
}

/** Per-meter figures and the cost of `totals` on the team's plan. */
export function priceUsage(team: Pick<Team, 'plan'>, totals: MeterTotals): { meters: MeterReport[]; overageCents: number } {
  const def = PLAN_DEFINITIONS[team.plan];
  const meters = METER_NAMES.map((meter): MeterReport => {
    const used = totals[meter];
    const included = def.included[meter];
    const cents = overageCents(team.plan, meter, used);
    return {
      meter,
      label: METERS[meter].label,
      unit: METERS[meter].recordUnit,
      used,
      included,
      overage: included === null ? 0 : Math.max(0, used - included),
      overageCents: cents,
      percent: included === null ? null : included === 0 ? 100 : Math.round((used / included) * 1000) / 10,
      kind: included === null ? 'unlimited' : def.overageCentsPerUnit[meter] === null ? 'hard' : 'overage',
    };
  });
  return { meters, overageCents: meters.reduce((sum, m) => sum + m.overageCents, 0) };
}

/** The team's overage so far this period, in cents (fractions kept): what the spend cap caps. */
export async function overageSoFar(knex: Knex, team: Pick<Team, 'id' | 'plan'>, now = new Date()): Promise<{ totals: MeterTotals; overageCents: number }> {
  const totals = await meterTotals(knex, team.id, periodContaining(now));
  return { totals, overageCents: priceUsage(team, totals).overageCents };
}

const cents = (n: number) => Math.round(n);

/** How much of the spend cap the overage has used, in percent; null without a cap. A cap of 0 allows no overage at all. */
export function spendCapPercent(capCents: number | null, overage: number): number | null {
  if (capCents === null) return null;
  if (capCents === 0) return overage > 0 ? 100 : 0;
  return Math.round((overage / capCents) * 1000) / 10;
}

export function spendCapReached(capCents: number | null, overage: number): boolean {
  if (capCents === null) return false;
  return capCents === 0 ? overage > 0 : overage >= capCents;
}

/** GET /api/teams/:team/usage: everything the Usage & billing page shows for one period. */
export async function usageReport(knex: Knex, team: Team, period: BillingPeriod, now = new Date()) {
  const [totals, apps, days] = await Promise.all([meterTotals(knex, team.id, period), appTotals(knex, team.id, period), dailyTotals(knex, team.id, period)]);
  const def = PLAN_DEFINITIONS[team.plan];
  const priced = priceUsage(team, totals);
  // Linear forecast: the usage so far, stretched over the whole period (a past period is final).
  const length = period.end.getTime() - period.start.getTime();
  const elapsed = Math.min(length, Math.max(0, now.getTime() - period.start.getTime()));
  const factor = elapsed === 0 ? 0 : length / elapsed;
  const forecastTotals = Object.fromEntries(METER_NAMES.map((m) => [m, Math.round(totals[m] * factor)])) as MeterTotals;
  const forecast = priceUsage(team, forecastTotals);
  const base = def.priceCents ?? 0;
  return {
    period: period.key,
    periodStart: period.start.toISOString(),
    periodEnd: period.end.toISOString(),
    /** The share of the period that has passed, 0..1. */
    elapsed: Math.round((elapsed / length) * 1000) / 1000,
    plan: { id: team.plan, name: def.name, priceCents: def.priceCents },
    meters: priced.meters.map((m) => ({ ...m, overageCents: cents(m.overageCents) })),
    cost: {
      currency: 'usd',
      baseCents: base,
      overageCents: cents(priced.overageCents),
      totalCents: cents(base + priced.overageCents),
      forecastCents: cents(base + forecast.overageCents),
      forecast: forecastTotals,
    },
    spendCap: {
      capCents: team.spendCapCents,
      percent: spendCapPercent(team.spendCapCents, priced.overageCents),
      reached: spendCapReached(team.spendCapCents, priced.overageCents),
    },
    apps: apps.map((a) => ({ app: a.app, usage: a.usage })),
    days: days.map((d) => ({ date: d.day, usage: d.totals })),
  };
}
