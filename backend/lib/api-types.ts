// The API's shapes, as backend/presenters/index.ts returns them and the dashboard reads them: one
// set of types for both, so the two cannot drift. Types and const arrays only, with no node, knex or
// model imports: the dashboard (Vite + vue-tsc) imports this file as it does slug-rules.ts.
// Timestamps are ISO strings; a field is `| null` exactly where the presenter can give null.
import type { DrainFigures } from './drain-summary.ts';
import type { DeploymentStatus, Stage, StageTimings } from '../deployments/pipeline.ts';
import type { Action } from '../policies/actions.ts';

export * from '../deployments/pipeline.ts';
export { ACTIONS, type Action } from '../policies/actions.ts';
export type { DrainFigures } from './drain-summary.ts';

export const ROLES = ['owner', 'admin', 'member'] as const;
export type Role = (typeof ROLES)[number];

/** What a token may do, each including the ones before it: read < deploy < admin (backend/policies/token-scopes.ts). */
export const TOKEN_SCOPES = ['read', 'deploy', 'admin'] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];

export const DOMAIN_STATUSES = ['pending_dns', 'pending_validation', 'active', 'failed'] as const;
export type DomainStatus = (typeof DOMAIN_STATUSES)[number];

export interface User {
  id: string;
  login: string;
  name: string | null;
  email: string | null;
  avatarUrl: string | null;
  createdAt: string;
}

export interface Team {
  slug: string;
  name: string;
  plan: string;
  personal: boolean;
  role?: Role;
  createdAt: string;
}

/** A team in GET /api/me: the caller's role there and every action it allows. */
export interface TeamSummary {
  slug: string;
  name: string;
  role: Role;
  plan: string;
  personal: boolean;
  can: Action[];
}

export interface Member {
  /** Unset when the member's user was not loaded with it. */
  login: string | undefined;
  name: string | null;
  avatarUrl: string | null;
  role: Role;
  joinedAt: string;
}

export interface Invitation {
  id: string;
  team: { slug: string; name: string } | null;
  login: string;
  role: Role;
  invitedBy: string | null;
  createdAt: string;
  expiresAt: string;
}

export type AppSource =
  { type: 'git'; url: string; branch: string } | { type: 'github'; repo: string; branch: string; installationId: number; repositoryId?: number };

/** An app's build and run settings: what the API shows and what a deployment's snapshot fixes. */
export interface AppSettings {
  rootDirectory: string;
  buildCommand: string | null;
  startCommand: string | null;
  region: string;
  machineSize: string;
  internalPort: number;
  healthCheckPath: string;
  instanceCount: number;
}

export interface App extends AppSettings {
  id: string;
  team: string;
  name: string;
  slug: string;
  url: string;
  source: AppSource;
  autoDeploy: boolean;
  /** The GitHub installation or repository is gone (suspended, removed, access taken away). */
  sourceProblem: { code: string; message: string | null } | null;
  createdAt: string;
  updatedAt: string;
}

export interface EnvVar {
  name: string;
  /** Present only when the caller asked to reveal and may. */
  value: string | null;
  revealed: boolean;
  updatedAt: string;
}

export interface ApiToken {
  id: string;
  name: string;
  prefix: string;
  scope: TokenScope;
  lastUsedAt: string | null;
  expiresAt: string | null;
  createdAt: string;
  /** The token itself: only in the answer that created it. */
  token?: string;
}

export interface AuditEvent {
  id: string;
  actor: string | null;
  action: string;
  subjectType: string | null;
  subjectId: string | null;
  data: unknown;
  createdAt: string;
}

export interface Deployment {
  id: string;
  app: string;
  number: number;
  status: DeploymentStatus;
  stage: Stage | null;
  ref: string | null;
  commitSha: string | null;
  commitMessage: string | null;
  trigger: string;
  triggeredBy: string | null;
  rollbackOf: string | null;
  image: string | null;
  provider: string | null;
  plan: unknown;
  reason: string | null;
  cancelRequested: boolean;
  stageTimings: StageTimings | null;
  /** What the release did to the old release's WebSocket clients; null when it replaced nothing. */
  drain: DrainFigures | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** GET /api/teams/:team/latest-deployments: each app's newest deployment, and the one it serves. */
export interface LatestDeployments {
  app: string;
  latest: Deployment;
  live: Deployment | null;
}

export interface Instance {
  id: string;
  name: string;
  state: string;
  region: string;
  deploymentId: string | null;
  image: string | null;
  cordoned: boolean;
  checks: { name: string; status: string; output: string | null; updatedAt: string | null }[];
  createdAt: string | null;
  updatedAt: string | null;
}

/** A line of a deployment's log, as the event stream sends it. */
export interface LogLine {
  seq: number;
  stage: string;
  stream: string;
  line: string;
  at: string;
}

export interface GithubInstallation {
  id: number;
  account: string;
  accountType: string;
  repositorySelection: string | null;
  suspended: boolean;
  repositoryCount: number;
  createdAt: string;
}

export interface GithubRepo {
  installationId: number;
  id: number;
  fullName: string;
  owner: string;
  name: string;
  private: boolean;
  defaultBranch: string | null;
  suspended: boolean;
}

export interface Branch {
  name: string;
  commitSha: string;
  protected: boolean;
  default: boolean;
}

/** What usage is metered in (backend/billing/plans.ts METERS gives each its unit and label). */
export const METER_NAMES = ['machine_seconds', 'bandwidth', 'builds'] as const;
export type MeterName = (typeof METER_NAMES)[number];

/** What a plan includes each period, by meter; null is unlimited. */
export type Included = Record<MeterName, number | null>;

export interface Billing {
  plan: string;
  planName: string;
  priceCents: number | null;
  included: Included;
  overageCentsPerUnit: Record<MeterName, number | null>;
  subscriptionStatus: string | null;
  pastDue: { since: string; deploysRefusedFrom: string; refusingDeploys: boolean } | null;
  stripeConfigured: boolean;
  /** How an owner changes plan: at once (`local`), through Checkout, or by swapping the subscription. */
  changePlanVia: 'local' | 'checkout' | 'subscription';
  plans: { plan: string; name: string; priceCents: number | null; included: Included }[];
}

export interface DnsRecord {
  type: 'CNAME' | 'A' | 'AAAA' | 'TXT';
  name: string;
  value: string;
  /** routing: sends the hostname's traffic to the app (the CNAME, or else the A and AAAA records). */
  purpose: 'routing' | 'acme_challenge' | 'ownership';
  /** For routing records: "cname" and "addresses" are alternatives; create one of the two. */
  choice?: 'cname' | 'addresses';
  note: string;
}

export interface Domain {
  id: string;
  /** Punycode, as DNS stores it. */
  hostname: string;
  /** Unicode, as people read it. */
  displayHostname: string;
  wildcard: boolean;
  status: DomainStatus;
  url: string | null;
  dnsRecords: DnsRecord[];
  certificate: { flyStatus: string | null; issuer: string | null; expiresAt: string | null; validation: Record<string, boolean> | null } | null;
  problem: string | null;
  rateLimitedUntil: string | null;
  lastCheckedAt: string | null;
  nextCheckAt: string | null;
  activeAt: string | null;
  createdAt: string;
}

export interface Notification {
  id: string;
  kind: string;
  title: string;
  body: string;
  data: Record<string, unknown>;
  read: boolean;
  readAt: string | null;
  createdAt: string;
}
