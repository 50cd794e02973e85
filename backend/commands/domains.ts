// Custom domains: add (request an ACME certificate at Fly), check now, remove (delete the
// certificate at Fly, which stops routing the hostname), and release an app's domains when the
// app is deleted. Local mode does the same through the local runtime's certificates API.
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { Domain, type App, type Team } from '../models/index.ts';
import { AppError, ConflictError, NotFoundError, ValidationError } from '../lib/errors.ts';
import type { Config } from '../config.ts';
import type { Actor } from '../middleware/auth.ts';
import { transaction } from '../lib/transaction.ts';
import { recordAudit } from './audit.ts';
import { assertPlanAllows } from '../billing/limits.ts';
import { machinesApi } from '../providers/fly/index.ts';
import { ensureFlyApp, ensurePublicIps } from '../providers/fly/app-setup.ts';
import { FlyApiError, FlyNetworkError, isTransient } from '../providers/fly/errors.ts';
import type { CertificateDetail } from '../providers/fly/types.ts';
import { displayHostname, isLocalhostName, MAX_DOMAINS_PER_APP, ownDomainProblem, parseHostname } from '../domains/hostname.ts';
import { applyCertificate, FIRST_CHECK_MS, postponeCheck, type DomainContext } from '../domains/apply.ts';

function invalidHostname(message: string): ValidationError {
  return new ValidationError(`body.hostname: ${message}`, [{ field: 'body.hostname', message }]);
}

/** Fly's words when it refuses, or that it could not be reached. */
function flyProblem(err: unknown): string {
  if (err instanceof FlyApiError) return err.detail;
  if (err instanceof FlyNetworkError) return `Fly could not be reached (${(err.cause as Error)?.message ?? 'network error'})`;
  return (err as Error).message;
}

function flyUnavailable(what: string, err: unknown): AppError {
  return new AppError(502, 'fly_unavailable', `Fly did not answer while ${what}: ${flyProblem(err)}. Nothing was changed; try again in a minute.`);
}

/** The plan's word on custom domains (billing/limits.ts); `.localhost` names in local mode are free to try on any plan. */
export function assertPlanAllowsDomain(config: Config, team: Team, hostname: string, wildcard: boolean): void {
  if (config.isLocal && isLocalhostName(hostname)) return;
  assertPlanAllows(team, 'customDomains');
  if (wildcard) assertPlanAllows(team, 'wildcardDomains');
}

export async function listDomains(knex: Knex, app: App): Promise<Domain[]> {
  return Domain.query(knex).where({ appId: app.id }).orderBy('hostname');
}

/** The app's domain named in a URL, in Unicode or punycode. */
export async function findDomain(knex: Knex, app: App, raw: string): Promise<Domain> {
  const parsed = parseHostname(raw);
  const domain = parsed.ok ? await Domain.query(knex).findOne({ appId: app.id, hostname: parsed.hostname }) : undefined;
  if (!domain) throw new NotFoundError(`Domain "${raw}" of app "${app.slug}"`);
  return domain;
}

async function taken(knex: Knex | Knex.Transaction, app: App, hostname: string): Promise<ConflictError> {
  const existing = await Domain.query(knex).findOne({ hostname });
  const shown = displayHostname(hostname);
  if (existing?.appId === app.id)
    return new ConflictError('domain_exists', `${shown} is already a domain of ${app.slug}.`, [
      { field: 'body.hostname', message: 'is already a domain of this app' },
    ]);
  return new ConflictError('domain_taken', `${shown} is already used by another Rhone app; remove it there first.`, [
    { field: 'body.hostname', message: 'is used by another app' },
  ]);
}

/** The Fly app behind a Rhone app, created with public addresses if it has not been deployed yet. */
async function prepareFlyApp(config: Config, app: App) {
  const { client, org } = machinesApi(config);
  const flyApp = app.flyAppName;
  await ensureFlyApp(client, flyApp, org, app.id);
  await ensurePublicIps(client, flyApp);
  return { client, flyApp };
}

export async function addDomain(knex: Knex, config: Config, log: Logger, actor: Actor, team: Team, app: App, raw: string): Promise<Domain> {
  const parsed = parseHostname(raw);
  if (!parsed.ok) throw invalidHostname(parsed.message);
  const { hostname, wildcard } = parsed;
  const own = ownDomainProblem(hostname, config.appsDomain, config.isLocal, app.slug);
  if (own) throw invalidHostname(own);
  assertPlanAllowsDomain(config, team, hostname, wildcard);
  const now = new Date();

  // The row first: the unique hostname and the per-app count decide, under the app's row lock.
  const domainId = await transaction(knex, async (trx) => {
    await trx('apps').where({ id: app.id }).forUpdate().first('id');
    const rows = (await trx('domains')
      .insert({ appId: app.id, hostname, status: 'pending_dns', checksStartedAt: now, nextCheckAt: new Date(now.getTime() + FIRST_CHECK_MS) })
      .onConflict('hostname')
      .ignore()
      .returning('id')) as { id: string }[];
    if (rows.length === 0) throw await taken(trx, app, hostname);
    const count = await Domain.query(trx).where({ appId: app.id }).resultSize();
    if (count > MAX_DOMAINS_PER_APP) {
      throw new ConflictError(
        'domain_limit',
        `An app may have at most ${MAX_DOMAINS_PER_APP} custom domains and ${app.slug} has ${count - 1}; remove one first.`,
      );
    }
    return rows[0].id;
  });

  const ctx: DomainContext = { team, app, actor };
  const audit = () =>
    recordAudit(knex, { teamId: team.id, actor, action: 'domain.added', subjectType: 'app', subjectId: app.id, data: { slug: app.slug, hostname } });
  let cert: CertificateDetail;
  try {
    const { client, flyApp } = await prepareFlyApp(config, app);
    cert = await client.requestCertificate(flyApp, hostname);
  } catch (err) {
    if (!isTransient(err)) {
      // Fly refused the hostname: nothing stays behind.
      await Domain.query(knex).deleteById(domainId);
      if (err instanceof FlyApiError && err.status < 500) {
        throw new AppError(422, 'domain_rejected', `Fly refused a certificate for ${displayHostname(hostname)}: ${err.detail}`, [
          { field: 'body.hostname', message: err.detail },
        ]);
      }
      throw err;
    }
    // Fly is down or busy: keep the domain; the certificate checker asks again.
    log.warn({ hostname, app: app.slug, err: flyProblem(err) }, 'could not request a certificate; the checker will retry');
    await postponeCheck(
      knex,
      await Domain.query(knex).findById(domainId).throwIfNotFound(),
      `Rhone could not request the certificate yet (${flyProblem(err)}); it will try again within a minute.`,
      now,
    );
    await audit();
    return Domain.query(knex).findById(domainId).throwIfNotFound();
  }
  await audit();
  const stored = await applyCertificate(knex, ctx, domainId, cert, { now, restart: true });
  return stored ?? Domain.query(knex).findById(domainId).throwIfNotFound();
}

/** Asks Fly to check DNS again now, and starts the checking over (a new 72 hours, 1-minute checks). */
export async function checkDomainNow(knex: Knex, config: Config, actor: Actor, team: Team, app: App, domain: Domain): Promise<Domain> {
  let cert: CertificateDetail;
  try {
    cert = await requestOrCheck(config, app, domain);
  } catch (err) {
    if (err instanceof FlyApiError && !err.transient)
      throw new AppError(422, 'domain_rejected', `Fly refused the check of ${displayHostname(domain.hostname)}: ${err.detail}`);
    throw flyUnavailable(`checking ${displayHostname(domain.hostname)}`, err);
  }
  const updated = await applyCertificate(knex, { team, app, actor }, domain.id, cert, { restart: true });
  if (!updated) throw new NotFoundError(`Domain "${displayHostname(domain.hostname)}" of app "${app.slug}"`);
  return updated;
}

/**
 * A DNS check at Fly; requests the certificate first if Rhone never could, or if Fly has lost it.
 * Exported for the certificate checker.
 */
export async function requestOrCheck(config: Config, app: App, domain: Pick<Domain, 'hostname' | 'certificate'>): Promise<CertificateDetail> {
  const { client, flyApp } = domain.certificate ? { client: machinesApi(config).client, flyApp: app.flyAppName } : await prepareFlyApp(config, app);
  if (!domain.certificate) return client.requestCertificate(flyApp, domain.hostname);
  try {
    return await client.checkCertificate(flyApp, domain.hostname);
  } catch (err) {
    if (!(err instanceof FlyApiError && err.status === 404)) throw err;
    return (await prepareFlyApp(config, app)).client.requestCertificate(flyApp, domain.hostname);
  }
}

/** Deletes the certificate at Fly (the hostname stops routing), then the domain. */
export async function removeDomain(knex: Knex, config: Config, actor: Actor, team: Team, app: App, domain: Domain): Promise<void> {
  try {
    await machinesApi(config).client.deleteCertificate(app.flyAppName, domain.hostname);
  } catch (err) {
    throw flyUnavailable(`removing the certificate of ${displayHostname(domain.hostname)}`, err);
  }
  await transaction(knex, async (trx) => {
    await Domain.query(trx).deleteById(domain.id);
    await recordAudit(trx, {
      teamId: team.id,
      actor,
      action: 'domain.removed',
      subjectType: 'app',
      subjectId: app.id,
      data: { slug: app.slug, hostname: domain.hostname },
    });
  });
}
