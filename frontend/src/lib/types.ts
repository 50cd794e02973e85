// The API's shapes as the dashboard reads them (backend/presenters/index.ts is the source).
export type Role = 'owner' | 'admin' | 'member';

export interface User {
  id: string;
  login: string;
  name: string | null;
  email: string | null;
  avatarUrl: string | null;
}

export interface TeamSummary {
  slug: string;
  name: string;
  role: Role;
  plan: string;
  personal: boolean;
  can: string[];
}

export type AppSource = { type: 'git'; url: string; branch: string } | { type: 'github'; repo: string; branch: string; installationId: number };

export interface App {
  id: string;
  team: string;
  name: string;
  slug: string;
  url: string;
  source: AppSource;
  rootDirectory: string;
  buildCommand: string | null;
  startCommand: string | null;
  region: string;
  machineSize: string;
  internalPort: number;
  healthCheckPath: string;
  instanceCount: number;
  autoDeploy: boolean;
  /** The GitHub installation or repository is gone (suspended, removed, access taken away). */
  sourceProblem: { code: string; message: string } | null;
  createdAt: string;
  updatedAt: string;
}

export const ACTIVE_STATUSES = ['queued', 'cloning', 'analyzing', 'building', 'deploying'] as const;
export type DeploymentStatus = (typeof ACTIVE_STATUSES)[number] | 'live' | 'failed' | 'canceled' | 'superseded' | 'replaced' | 'skipped';
export const STAGES = ['clone', 'analyze', 'build', 'deploy'] as const;
export type Stage = (typeof STAGES)[number];

export interface StageTiming {
  startedAt?: string;
  finishedAt?: string;
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
  stageTimings: Partial<Record<Stage, StageTiming>> | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

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
  checks: { name: string; status: string; output: string | null }[];
  createdAt: string | null;
}

export interface Member {
  login: string;
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

/** What a token may do: read < deploy < admin (backend/policies/token-scopes.ts). */
export type TokenScope = 'read' | 'deploy' | 'admin';

export interface ApiToken {
  id: string;
  name: string;
  prefix: string;
  scope: TokenScope;
  lastUsedAt: string | null;
  expiresAt: string | null;
  createdAt: string;
  token?: string;
}

export interface EnvVar {
  name: string;
  value: string | null;
  revealed: boolean;
  updatedAt: string;
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

export interface LogLine {
  seq: number;
  stage: string;
  stream: string;
  line: string;
  at: string;
}

export function isActive(status: DeploymentStatus): boolean {
  return (ACTIVE_STATUSES as readonly string[]).includes(status);
}

export type DomainStatus = 'pending_dns' | 'pending_validation' | 'active' | 'failed';

export interface DnsRecord {
  type: 'CNAME' | 'A' | 'AAAA' | 'TXT';
  name: string;
  value: string;
  purpose: 'routing' | 'acme_challenge' | 'ownership';
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
  certificate: { flyStatus: string | null; issuer: string | null; expiresAt: string | null } | null;
  problem: string | null;
  rateLimitedUntil: string | null;
  lastCheckedAt: string | null;
  nextCheckAt: string | null;
  activeAt: string | null;
  createdAt: string;
}
