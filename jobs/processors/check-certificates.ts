// The certificate checker: every minute it takes the custom domains whose next check is due
// (claimed with SKIP LOCKED, so several workers share them) and asks Fly again. Each domain backs
// off on its own (1 minute doubling to 1 hour, never before Let's Encrypt's rate limit lifts) and
// is given up after 72 hours with what is still wrong (backend/domains/apply.ts).
import type { Job } from 'bullmq';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Config } from '../../backend/config.ts';
import { App, Domain, Team } from '../../backend/models/index.ts';
import { requestOrCheck } from '../../backend/commands/domains.ts';
import { applyCertificate, failDomain, postponeCheck } from '../../backend/domains/apply.ts';
import { displayHostname } from '../../backend/domains/hostname.ts';
import { FlyApiError, isTransient } from '../../backend/providers/fly/errors.ts';
import { QUEUES } from '../queues.ts';

export const definition = QUEUES.checkCertificates;

/** How many domains one run checks; the rest wait for the next minute. */
export const BATCH = 50;
/** A claimed domain is not claimed again for this long, even if its check crashed. */
const CLAIM_MS = 5 * 60_000;

export interface CheckDeps {
  knex: Knex;
  config: Config;
  log: Logger;
}

export interface CheckResult {
  checked: number;
  active: string[];
  failed: string[];
  postponed: string[];
}

async function claimDue(knex: Knex, now: Date): Promise<Domain[]> {
  return knex.transaction(async (trx) => {
    const due = await Domain.query(trx)
      .whereIn('status', ['pending_dns', 'pending_validation'])
      .where('nextCheckAt', '<=', now)
      .orderBy('nextCheckAt')
      .limit(BATCH)
      .forUpdate()
      .skipLocked();
    if (due.length > 0)
      await Domain.query(trx)
        .patch({ nextCheckAt: new Date(now.getTime() + CLAIM_MS) })
        .whereIn(
          'id',
          due.map((d) => d.id),
        );
    return due;
  });
}

export async function checkCertificates({ knex, config, log }: CheckDeps, now = new Date()): Promise<CheckResult> {
  const result: CheckResult = { checked: 0, active: [], failed: [], postponed: [] };
  for (const domain of await claimDue(knex, now)) {
    const app = await App.query(knex).findById(domain.appId);
    if (!app) continue; // deleted meanwhile; its row went with it
    const team = await Team.query(knex).findById(app.teamId).throwIfNotFound();
    const ctx = { team, app, actor: null };
    result.checked++;
    try {
      const updated = await applyCertificate(knex, ctx, domain.id, await requestOrCheck(config, app, domain), { now });
      if (updated?.status === 'active') result.active.push(domain.hostname);
      if (updated?.status === 'failed') result.failed.push(domain.hostname);
    } catch (err) {
      if (err instanceof FlyApiError && !err.transient) {
        await failDomain(
          knex,
          ctx,
          domain.id,
          `Fly refused the certificate for ${displayHostname(domain.hostname)}: ${err.detail}. Remove the domain and add it again; if that fails too, contact support.`,
          now,
        );
        result.failed.push(domain.hostname);
        continue;
      }
      // Fly unreachable (or a bug): log it, keep the domain, and back off; the others still get checked.
      log[isTransient(err) ? 'warn' : 'error']({ err, hostname: domain.hostname, app: app.slug }, 'could not check a certificate; will try again');
      await postponeCheck(knex, domain, `Rhone could not reach Fly to check the certificate (${(err as Error).message}); it will try again.`, now);
      result.postponed.push(domain.hostname);
    }
  }
  return result;
}

export function processor(deps: CheckDeps) {
  return async (job: Job) => {
    definition.payload.parse(job.data);
    return checkCertificates(deps);
  };
}
