// Every field the API exposes, listed explicitly. Models are never serialised directly.
import type { ApiToken, App, AppSource, AuditEvent, Deployment, EnvVar, Invitation, Team, TeamMember, User, Role } from '../models/index.ts';
import type { Config } from '../config.ts';
import type { GithubInstallation, GithubInstallationRepository, Notification } from '../models/index.ts';
import { describeSourceProblem } from '../deployments/source.ts';
import type { Domain } from '../models/index.ts';
import { dnsRecords } from '../domains/certificate.ts';
import { displayHostname } from '../domains/hostname.ts';
import { PLAN_DEFINITIONS, SELF_SERVE_PLANS } from '../billing/plans.ts';
import { pastDueState } from '../billing/past-due.ts';
import { subscribed } from '../commands/billing.ts';
import type * as Api from '../lib/api-types.ts';

// A timestamp the model always has is a string in the API's types; one it may lack, string | null.
function iso(d: Date | string): string;
function iso(d: Date | string | null | undefined): string | null;
function iso(d: Date | string | null | undefined): string | null {
  return d ? new Date(d).toISOString() : null;
}

export function presentUser(u: User): Api.User {
  return { id: u.id, login: u.login, name: u.name, email: u.email, avatarUrl: u.avatarUrl, createdAt: iso(u.createdAt) };
}

export function presentTeam(t: Team, role?: Role): Api.Team {
  return { slug: t.slug, name: t.name, plan: t.plan, personal: t.personal, ...(role ? { role } : {}), createdAt: iso(t.createdAt) };
}

export function presentMember(m: TeamMember): Api.Member {
  return {
    login: m.user?.login,
    name: m.user?.name ?? null,
    avatarUrl: m.user?.avatarUrl ?? null,
    role: m.role,
    joinedAt: iso(m.createdAt),
  };
}

export function presentInvitation(i: Invitation): Api.Invitation {
  return {
    id: i.id,
    team: i.team ? { slug: i.team.slug, name: i.team.name } : null,
    login: i.login,
    role: i.role,
    invitedBy: i.inviter?.login ?? null,
    createdAt: iso(i.createdAt),
    expiresAt: iso(i.expiresAt),
  };
}

/**
 * The address the app answers on. Locally the router serves `{slug}.localhost`. In production the
 * apps domain is not routed to Fly yet, so the address that answers is Fly's own
 * `https://<fly app>.fly.dev` (the release gives the app the IPs it resolves to).
 */
export function appUrl(config: Config, app: Pick<App, 'slug' | 'flyAppName'>): string {
  if (config.isLocal) return `http://${app.slug}.${config.appsDomain}:${config.routerPort}`;
  // The address that really answers: the apps domain once its edge is set up, else Fly's own.
  return config.appsDomainRouted ? `https://${app.slug}.${config.appsDomain}` : `https://${app.flyAppName}.fly.dev`;
}

export function presentApp(config: Config, a: App, team: Pick<Team, 'slug'>): Api.App {
  return {
    id: a.id,
    team: team.slug,
    name: a.name,
    slug: a.slug,
    url: appUrl(config, a),
    source: presentSource(a.source),
    rootDirectory: a.rootDirectory,
    buildCommand: a.buildCommand,
    startCommand: a.startCommand,
    region: a.region,
    machineSize: a.machineSize,
    internalPort: a.internalPort,
    healthCheckPath: a.healthCheckPath,
    instanceCount: a.instanceCount,
    autoDeploy: a.autoDeploy,
    /** Set when the GitHub source cannot be reached: the page says why, and pushes do not deploy. */
    sourceProblem: a.sourceProblem ? { code: a.sourceProblem, message: describeSourceProblem(a) } : null,
    createdAt: iso(a.createdAt),
    updatedAt: iso(a.updatedAt),
  };
}

/** A value is present only when the caller asked to reveal and may. */
export function presentEnvVar(v: EnvVar, value: string | null): Api.EnvVar {
  return { name: v.name, value, revealed: value !== null, updatedAt: iso(v.updatedAt) };
}

export function presentToken(t: ApiToken): Api.ApiToken {
  return { id: t.id, name: t.name, prefix: t.prefix, scope: t.scope, lastUsedAt: iso(t.lastUsedAt), expiresAt: iso(t.expiresAt), createdAt: iso(t.createdAt) };
}

export function presentAudit(e: AuditEvent): Api.AuditEvent {
  return {
    id: String(e.id),
    actor: e.actorLogin,
    action: e.action,
    subjectType: e.subjectType,
    subjectId: e.subjectId,
    data: e.data,
    createdAt: iso(e.createdAt),
  };
}

export function presentDeployment(d: Deployment, app: Pick<App, 'slug'>, triggeredBy?: string | null): Api.Deployment {
  const plan = d.plan as { provider?: string } | null;
  return {
    id: d.id,
    app: app.slug,
    number: d.number,
    status: d.status,
    stage: d.stage,
    ref: d.ref,
    commitSha: d.commitSha,
    commitMessage: d.commitMessage,
    trigger: d.trigger,
    triggeredBy: triggeredBy ?? null,
    rollbackOf: d.rollbackOf,
    image: d.image,
    provider: plan?.provider ?? null,
    plan: d.plan,
    reason: d.reason,
    cancelRequested: Boolean(d.cancelRequestedAt),
    stageTimings: d.stageTimings,
    drain: d.drain ?? null,
    createdAt: iso(d.createdAt),
    startedAt: iso(d.startedAt),
    finishedAt: iso(d.finishedAt),
  };
}

export function presentInstallation(i: GithubInstallation, repositoryCount: number): Api.GithubInstallation {
  return {
    id: i.id,
    account: i.accountLogin,
    accountType: i.accountType,
    repositorySelection: i.repositorySelection,
    suspended: Boolean(i.suspendedAt),
    repositoryCount,
    createdAt: iso(i.createdAt),
  };
}

export function presentGithubRepo(r: GithubInstallationRepository & { suspended?: boolean }): Api.GithubRepo {
  const [owner, name] = r.fullName.split('/');
  return {
    installationId: r.installationId,
    id: r.repositoryId,
    fullName: r.fullName,
    owner,
    name,
    private: r.private,
    defaultBranch: r.defaultBranch,
    suspended: Boolean(r.suspended),
  };
}

export function presentBranch(b: { name: string; commit: { sha: string }; protected?: boolean }, defaultBranch: string | null): Api.Branch {
  return { name: b.name, commitSha: b.commit.sha, protected: Boolean(b.protected), default: b.name === defaultBranch };
}

/**
 * GET /api/teams/:team/billing. `changePlanVia` says how an owner changes plan: `local` (at once,
 * no Stripe), `checkout` (no subscription yet), `subscription` (PUT .../billing/plan swaps it).
 */
export function presentBilling(t: Team, stripeConfigured: boolean): Api.Billing {
  const def = PLAN_DEFINITIONS[t.plan];
  const pastDue = pastDueState(t);
  return {
    plan: t.plan,
    planName: def.name,
    priceCents: def.priceCents,
    included: def.included,
    overageCentsPerUnit: def.overageCentsPerUnit,
    subscriptionStatus: t.subscriptionStatus,
    pastDue: pastDue ? { since: iso(pastDue.since), deploysRefusedFrom: iso(pastDue.deploysRefusedFrom), refusingDeploys: pastDue.refusingDeploys } : null,
    stripeConfigured,
    changePlanVia: !stripeConfigured ? 'local' : subscribed(t) ? 'subscription' : 'checkout',
    plans: SELF_SERVE_PLANS.map((p) => ({
      plan: p,
      name: PLAN_DEFINITIONS[p].name,
      priceCents: PLAN_DEFINITIONS[p].priceCents,
      included: PLAN_DEFINITIONS[p].included,
    })),
  };
}

/** A custom domain: `hostname` as stored (punycode), `displayHostname` in Unicode, and the DNS records to create. */
export function presentDomain(config: Config, d: Domain): Api.Domain {
  const cert = d.certificate;
  const issued = cert?.certificates?.find((c) => c.status === 'active');
  return {
    id: d.id,
    hostname: d.hostname,
    displayHostname: displayHostname(d.hostname),
    wildcard: d.hostname.startsWith('*.'),
    status: d.status,
    url: d.hostname.startsWith('*.') ? null : config.isLocal ? `http://${d.hostname}:${config.routerPort}` : `https://${d.hostname}`,
    dnsRecords: dnsRecords(d.hostname, d.dnsRequirements),
    certificate: cert
      ? { flyStatus: cert.status ?? null, issuer: issued?.issuer ?? null, expiresAt: issued?.expires_at ?? null, validation: cert.validation ?? null }
      : null,
    problem: d.status === 'active' ? null : d.lastError,
    rateLimitedUntil: iso(d.rateLimitedUntil),
    lastCheckedAt: iso(d.lastCheckedAt),
    nextCheckAt: iso(d.nextCheckAt),
    activeAt: iso(d.activeAt),
    createdAt: iso(d.createdAt),
  };
}

/** An in-app notification (quota and spend-cap alerts carry meter, threshold and period in data). */
export function presentNotification(n: Notification): Api.Notification {
  return {
    id: String(n.id),
    kind: n.kind,
    title: n.title,
    body: n.body,
    data: n.data,
    read: n.readAt !== null,
    readAt: iso(n.readAt),
    createdAt: iso(n.createdAt),
  };
}

/**
 * An app's source as members see it. URLs with credentials are refused since they leak, but an app
 * created before that may still hold one: its user name and password are never shown.
 */
function presentSource(source: AppSource): AppSource {
  if (source.type !== 'git') return source;
  try {
    const url = new URL(source.url);
    if (!url.username && !url.password) return source;
    url.username = '';
    url.password = '';
    return { ...source, url: url.href };
  } catch {
    return source; // scp-like (git@host:path) or file paths carry no password
  }
}
