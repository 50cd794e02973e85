// poll-usage: every five minutes, count each machine's started time since the last poll and
// record it per machine and window (plus each app's bandwidth), then send the quota alerts.
//
// The window is [polled_through, to) from usage_poll_state, where `to` is fixed before anything is
// counted: a retried or overlapping poll counts the same window again and the usage_records unique
// index drops the repeats; a poll that never ran leaves a longer window, counted from the machines'
// events, so there is no hole and nothing is counted twice. The window is cut at UTC midnights.
//
// One org listing (include_deleted, so a machine destroyed since the last poll still has its last
// minutes counted); its pages are sequential (each cursor comes from the previous page) and share
// the org's rate-limit bucket, so while one page is fetched the previous one is worked on: machine
// events for machines that changed, app lookups, and one multi-row insert per page.
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { FlyClient } from '../providers/fly/client.ts';
import { META, type MachineGuest, type OrgMachine } from '../providers/fly/types.ts';
import { FLY_APP_PREFIX } from '../providers/fly/names.ts';
import { MACHINE_SIZES } from '../lib/fly-presets.ts';
import { insertUsage, type UsageRow } from './ledger.ts';
import { changedSince, splitAtUtcDays, startedMsIn } from './machine-time.ts';
import type { AppRef, BandwidthSource } from './bandwidth.ts';
import { checkAlerts } from './alerts.ts';

export interface PollDeps {
  knex: Knex;
  client: FlyClient;
  org: string;
  log: Logger;
  bandwidth?: BandwidthSource;
  now?: () => Date;
  /** Machine-event calls in flight at once (each machine has its own rate-limit bucket). */
  eventConcurrency?: number;
  pageSize?: number;
}

export interface PollResult {
  window: { from: string; to: string } | null;
  pages: number;
  /** From the first page asked for to the last page received: the part the rate limit bounds. */
  listingMs: number;
  machines: number;
  /** Machines whose events were read (they changed during the window). */
  eventLookups: number;
  records: number;
  teams: number;
  alerts: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Fixes the window this poll counts; null on the very first poll (it only sets the watermark). */
async function claimWindow(knex: Knex, org: string, now: Date): Promise<{ from: Date; to: Date } | null> {
  return knex.transaction(async (trx) => {
    const state = (await trx('usagePollState').where({ org }).forUpdate().first()) as { polledThrough: Date; pendingTo: Date | null } | undefined;
    if (!state) {
      await trx('usagePollState').insert({ org, polledThrough: now }).onConflict('org').ignore();
      return null;
    }
    if (state.pendingTo) return { from: state.polledThrough, to: state.pendingTo };
    if (now.getTime() <= state.polledThrough.getTime()) return null;
    await trx('usagePollState').where({ org }).update({ pendingTo: now, updatedAt: new Date() });
    return { from: state.polledThrough, to: now };
  });
}

async function completeWindow(knex: Knex, org: string, to: Date): Promise<void> {
  await knex('usagePollState').where({ org, pendingTo: to }).update({ polledThrough: to, pendingTo: null, updatedAt: new Date() });
}

/** "shared-cpu-1x" for Fly's named sizes; otherwise kind, CPUs and memory spelled out. */
export function guestSize(guest: MachineGuest | undefined): string | null {
  if (!guest) return null;
  const kind = guest.cpu_kind ?? 'shared';
  const cpus = guest.cpus ?? 1;
  const named = Object.entries(MACHINE_SIZES).find(([, s]) => s.cpuKind === kind && s.cpus === cpus && s.memoryMb === guest.memory_mb);
  return named ? named[0] : `${kind}-cpu-${cpus}x:${guest.memory_mb ?? 0}MB`;
}

/** Maps machines to Rhone apps and teams: by the rhone_app metadata, else by the Fly app name stored on the app. */
class AppDirectory {
  private readonly byId = new Map<string, AppRef | null>();
  private readonly byFlyName = new Map<string, AppRef | null>();
  readonly seen = new Map<string, AppRef>();

  constructor(private readonly knex: Knex) {}

  async load(machines: OrgMachine[]): Promise<void> {
    const ids = [...new Set(machines.map((m) => m.config?.metadata?.[META.app]).filter((id): id is string => !!id && UUID.test(id) && !this.byId.has(id)))];
    const names = [
      ...new Set(
        machines
          .filter((m) => !m.config?.metadata?.[META.app])
          .map((m) => m.app_name)
          .filter((n) => n.startsWith(FLY_APP_PREFIX) && !this.byFlyName.has(n)),
      ),
    ];
    if (ids.length > 0) {
      const rows = (await this.knex('apps').whereRaw('id = any(?::uuid[])', [ids]).select('id', 'teamId', 'flyAppName')) as {
        id: string;
        teamId: string;
        flyAppName: string;
      }[];
      for (const r of rows) this.byId.set(r.id, { flyApp: r.flyAppName, appId: r.id, teamId: r.teamId });
      const missing = ids.filter((id) => !this.byId.has(id));
      // A deleted app's machines still ran until they were destroyed: its deletion's audit event names the team.
      if (missing.length > 0) {
        const deleted = (await this.knex('auditEvents')
          .where({ action: 'app.deleted', subjectType: 'app' })
          .whereIn('subjectId', missing)
          .select('subjectId', 'teamId')) as { subjectId: string; teamId: string }[];
        for (const d of deleted) this.byId.set(d.subjectId, { flyApp: '', appId: null, teamId: d.teamId });
      }
      for (const id of missing) if (!this.byId.has(id)) this.byId.set(id, null);
    }
    if (names.length > 0) {
      const rows = (await this.knex('apps').whereRaw('fly_app_name = any(?::text[])', [names]).select('id', 'teamId', 'flyAppName')) as {
        id: string;
        teamId: string;
        flyAppName: string;
      }[];
      for (const r of rows) this.byFlyName.set(r.flyAppName, { flyApp: r.flyAppName, appId: r.id, teamId: r.teamId });
      for (const n of names) if (!this.byFlyName.has(n)) this.byFlyName.set(n, null);
    }
  }

  of(m: OrgMachine): AppRef | null {
    const id = m.config?.metadata?.[META.app];
    const ref = id ? this.byId.get(id) : this.byFlyName.get(m.app_name);
    if (!ref) return null;
    const withName = { ...ref, flyApp: m.app_name };
    if (ref.appId) this.seen.set(m.app_name, withName);
    return withName;
  }
}

/** Runs `fn` over items with at most `limit` in flight. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  });
  await Promise.all(workers);
  return out;
}

export async function pollUsage(deps: PollDeps): Promise<PollResult> {
  const now = deps.now?.() ?? new Date();
  const result: PollResult = { window: null, pages: 0, listingMs: 0, machines: 0, eventLookups: 0, records: 0, teams: 0, alerts: 0 };
  const window = await claimWindow(deps.knex, deps.org, now);
  if (!window) return result;
  const from = window.from.getTime();
  const to = window.to.getTime();
  result.window = { from: window.from.toISOString(), to: window.to.toISOString() };
  const windows = splitAtUtcDays(from, to);
  const apps = new AppDirectory(deps.knex);
  const teams = new Set<string>();

  const countPage = async (machines: OrgMachine[]) => {
    await apps.load(machines);
    const billable = machines.map((m) => ({ m, app: apps.of(m) })).filter((x): x is { m: OrgMachine; app: AppRef } => x.app !== null);
    const rows = (
      await mapLimit(billable, deps.eventConcurrency ?? 16, async ({ m, app }): Promise<UsageRow[]> => {
        const now = { state: m.state, updatedAtMs: Date.parse(m.updated_at) };
        let events = null;
        if (changedSince(now, from)) {
          result.eventLookups++;
          events = await deps.client.listEvents(m.app_name, m.id, 50);
        }
        return startedMsIn(now, events, windows)
          .map((ms, i) => ({
            teamId: app.teamId,
            appId: app.appId,
            machineId: m.id,
            meter: 'machine_seconds' as const,
            guestSize: guestSize(m.config?.guest),
            region: m.region,
            windowStart: new Date(windows[i][0]),
            windowEnd: new Date(windows[i][1]),
            quantity: Math.round(ms / 1000),
          }))
          .filter((r) => r.quantity > 0);
      })
    ).flat();
    const written = await insertUsage(deps.knex, rows);
    result.records += written.inserted;
    for (const t of written.teamIds) teams.add(t);
  };

  // Fetch page n+1 while page n is counted.
  const pages = deps.client.orgMachinePages(deps.org, { includeDeleted: true, pageSize: deps.pageSize })[Symbol.asyncIterator]();
  const counting: Promise<void>[] = [];
  const listingStart = performance.now();
  // The pages already handed out are counted to the end whatever happens, and a failed listing is
  // the error reported: a throw from a `finally` would have hidden it behind a counting error.
  let listing: { failed: true; error: unknown } | { failed: false } = { failed: false };
  try {
    for (let page = await pages.next(); !page.done; page = await pages.next()) {
      result.pages++;
      result.machines += page.value.length;
      counting.push(countPage(page.value));
    }
    result.listingMs = Math.round(performance.now() - listingStart);
  } catch (error) {
    listing = { failed: true, error };
  }
  const settled = await Promise.allSettled(counting);
  if (listing.failed) throw listing.error;
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;

  if (deps.bandwidth && apps.seen.size > 0) {
    for (const t of await deps.bandwidth.record(deps.knex, [...apps.seen.values()], windows)) teams.add(t);
  }
  await completeWindow(deps.knex, deps.org, window.to);
  result.teams = teams.size;
  result.alerts = (await checkAlerts(deps.knex, [...teams], now)).length;
  deps.log.info({ ...result }, 'usage polled');
  return result;
}
