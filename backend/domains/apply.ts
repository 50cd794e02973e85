// Records Fly's answer about a domain's certificate: its status, the records to create, when to
// check next (1 minute, doubling up to 1 hour, never before Let's Encrypt's rate limit lifts), and
// giving up after 72 hours. Going active leaves an audit event and a notification for the team's
// admins, once. Shared by the API (add, check now) and the certificate checker job.
import type { Knex } from 'knex';
import { Domain, type App, type Team } from '../models/index.ts';
import type { Actor } from '../middleware/auth.ts';
import type { CertificateDetail } from '../providers/fly/types.ts';
import { recordAudit } from '../commands/audit.ts';
import { transaction } from '../lib/transaction.ts';
import { statusOf, whatIsWrong } from './certificate.ts';
import { displayHostname } from './hostname.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
export const FIRST_CHECK_MS = MINUTE;
export const MAX_CHECK_INTERVAL_MS = HOUR;
export const GIVE_UP_AFTER_MS = 72 * HOUR;

/** The wait after the n-th check (n ≥ 1): 1, 2, 4 … 32 minutes, then every hour. */
export function checkIntervalMs(attempts: number): number {
  return Math.min(MAX_CHECK_INTERVAL_MS, FIRST_CHECK_MS * 2 ** Math.max(0, attempts - 1));
}

export function nextCheckAt(attempts: number, now: Date, rateLimitedUntil: Date | null): Date {
  const next = new Date(now.getTime() + checkIntervalMs(attempts));
  return rateLimitedUntil && rateLimitedUntil > next ? rateLimitedUntil : next;
}

export interface DomainContext {
  team: Team;
  app: App;
  /** Who asked (an API call), or null (the checker). */
  actor: Actor | null;
}

/**
 * Stores Fly's answer. `restart` (a new domain, or someone pressing "Check now") starts the
 * 72 hours and the backoff again. Returns the updated domain, or undefined if it was removed.
 */
export async function applyCertificate(
  knex: Knex,
  ctx: DomainContext,
  domainId: string,
  cert: CertificateDetail,
  options: { now?: Date; restart?: boolean } = {},
): Promise<Domain | undefined> {
  const now = options.now ?? new Date();
  return transaction(knex, async (trx) => {
    const domain = await Domain.query(trx).findById(domainId).forUpdate();
    if (!domain) return undefined;
    const status = statusOf(cert);
    const attempts = options.restart ? 1 : domain.checkAttempts + 1;
    const startedAt = options.restart ? now : new Date(domain.checksStartedAt);
    const limited = cert.rate_limited_until ? new Date(cert.rate_limited_until) : null;
    const base: Partial<Domain> = {
      certificate: cert,
      dnsRequirements: cert.dns_requirements ?? null,
      rateLimitedUntil: limited && !Number.isNaN(limited.getTime()) ? limited : null,
      lastCheckedAt: now,
      checkAttempts: attempts,
      checksStartedAt: startedAt,
    };
    let patch: Partial<Domain>;
    if (status === 'active') {
      patch = { ...base, status, activeAt: domain.status === 'active' && domain.activeAt ? domain.activeAt : now, nextCheckAt: null, lastError: null };
    } else if (now.getTime() - startedAt.getTime() >= GIVE_UP_AFTER_MS) {
      patch = {
        ...base,
        status: 'failed',
        nextCheckAt: null,
        lastError: `Rhone stopped checking after 72 hours. ${whatIsWrong(domain.hostname, cert, now)} Fix the DNS records, then press "Check now" to try again.`,
      };
    } else {
      patch = {
        ...base,
        status,
        activeAt: null,
        nextCheckAt: nextCheckAt(attempts, now, base.rateLimitedUntil ?? null),
        lastError: whatIsWrong(domain.hostname, cert, now),
      };
    }
    const updated = await Domain.query(trx).patchAndFetchById(domain.id, patch);
    if (patch.status === 'active' && domain.status !== 'active') await announce(trx, ctx, updated, 'active');
    if (patch.status === 'failed' && domain.status !== 'failed') await announce(trx, ctx, updated, 'failed');
    return updated;
  });
}

/** Stops checking a domain Fly refuses outright (a permanent error), saying why. */
export async function failDomain(knex: Knex, ctx: DomainContext, domainId: string, reason: string, now = new Date()): Promise<void> {
  await transaction(knex, async (trx) => {
    const domain = await Domain.query(trx).findById(domainId).forUpdate();
    if (!domain || domain.status === 'failed') return;
    const updated = await Domain.query(trx).patchAndFetchById(domain.id, { status: 'failed', nextCheckAt: null, lastCheckedAt: now, lastError: reason });
    await announce(trx, ctx, updated, 'failed');
  });
}

/** Fly did not answer: keep the domain as it is and ask again later. */
export async function postponeCheck(knex: Knex, domain: Domain, reason: string, now = new Date()): Promise<void> {
  const attempts = domain.checkAttempts + 1;
  await Domain.query(knex)
    .patch({
      checkAttempts: attempts,
      nextCheckAt: nextCheckAt(attempts, now, domain.rateLimitedUntil ? new Date(domain.rateLimitedUntil) : null),
      lastError: reason,
    })
    .where({ id: domain.id })
    .whereNot({ status: 'active' });
}

/** An audit event, and a notification for the team's admins (once per domain and outcome). */
async function announce(trx: Knex.Transaction, ctx: DomainContext, domain: Domain, outcome: 'active' | 'failed'): Promise<void> {
  const shown = displayHostname(domain.hostname);
  const data = { slug: ctx.app.slug, hostname: domain.hostname, displayHostname: shown };
  await recordAudit(trx, {
    teamId: ctx.team.id,
    actor: ctx.actor,
    action: outcome === 'active' ? 'domain.activated' : 'domain.failed',
    subjectType: 'app',
    subjectId: ctx.app.id,
    data,
  });
  const note =
    outcome === 'active'
      ? { title: `${shown} is live`, body: `${ctx.app.name} now answers on ${shown} with a valid TLS certificate.` }
      : { title: `${shown} could not be set up`, body: domain.lastError ?? '' };
  await trx('notifications')
    .insert({
      teamId: ctx.team.id,
      minRole: 'admin',
      kind: `domain.${outcome}`,
      ...note,
      data: JSON.stringify({ app: ctx.app.slug, hostname: domain.hostname }),
      // Active once per domain; failed once per round of checking (a "Check now" starts another).
      dedupeKey: outcome === 'active' ? `domain.active:${domain.id}` : `domain.failed:${domain.id}:${new Date(domain.checksStartedAt).toISOString()}`,
    })
    .onConflict(['team_id', 'dedupe_key'])
    .ignore();
}
