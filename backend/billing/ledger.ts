// Writing usage: every meter (machine time, bandwidth, builds) goes through insertUsage, which
// inserts usage_records idempotently (the window unique index) and, in the same statement, adds
// exactly the rows it inserted to the team's running period totals.
import type { Knex } from 'knex';
import type { Meter } from './plans.ts';

export interface UsageRow {
  teamId: string;
  appId: string | null;
  /** The machine; for builds the deployment id (one build per deployment); null for bandwidth. */
  machineId: string | null;
  meter: Meter;
  guestSize?: string | null;
  region?: string | null;
  windowStart: Date;
  windowEnd: Date;
  quantity: number;
}

const INSERT = `
with input as (
  select * from unnest(?::uuid[], ?::uuid[], ?::text[], ?::text[], ?::text[], ?::text[], ?::timestamptz[], ?::timestamptz[], ?::bigint[])
    as t(team_id, app_id, machine_id, meter, guest_size, region, window_start, window_end, quantity)
), ins as (
  insert into usage_records (team_id, app_id, machine_id, meter, guest_size, region, window_start, window_end, quantity)
  select * from input
  on conflict (meter, coalesce(machine_id, ''), coalesce(app_id::text, ''), window_start) do nothing
  returning team_id, meter, window_start, quantity
), sums as (
  insert into usage_period_totals (team_id, meter, period, quantity)
  select team_id, meter, date_trunc('month', window_start at time zone 'UTC')::date, sum(quantity) from ins group by 1, 2, 3 order by 1, 2, 3
  on conflict (team_id, meter, period) do update set quantity = usage_period_totals.quantity + excluded.quantity
  returning team_id
)
select (select count(*) from ins)::int as inserted, (select coalesce(array_agg(distinct team_id), '{}') from sums) as teams`;

/** Inserts the rows (one statement); a row already recorded for its window is skipped. */
export async function insertUsage(knex: Knex | Knex.Transaction, rows: UsageRow[]): Promise<{ inserted: number; teamIds: string[] }> {
  if (rows.length === 0) return { inserted: 0, teamIds: [] };
  const col = <T>(f: (r: UsageRow) => T) => rows.map(f);
  const result = await knex.raw(INSERT, [
    col((r) => r.teamId),
    col((r) => r.appId),
    col((r) => r.machineId),
    col((r) => r.meter),
    col((r) => r.guestSize ?? null),
    col((r) => r.region ?? null),
    col((r) => r.windowStart.toISOString()),
    col((r) => r.windowEnd.toISOString()),
    col((r) => Math.round(r.quantity)),
  ] as unknown as readonly Knex.RawBinding[]);
  const row = (result.rows as { inserted: number; teams: string[] }[])[0];
  return { inserted: row.inserted, teamIds: row.teams };
}

/** One build, counted when the build stage ends; its window is the build's run time. */
export async function recordBuild(knex: Knex, build: { teamId: string; appId: string; deploymentId: string; startedAt: Date; endedAt: Date }) {
  return insertUsage(knex, [
    {
      teamId: build.teamId,
      appId: build.appId,
      machineId: build.deploymentId,
      meter: 'builds',
      windowStart: build.startedAt,
      windowEnd: build.endedAt,
      quantity: 1,
    },
  ]);
}
