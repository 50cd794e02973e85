// The subset of Fly's Machines API types Rhone uses, named and shaped as in Fly's OpenAPI spec,
// backend/providers/fly/spec/fly-machines-openapi.json (snake_case on the wire). The local runtime answers
// with these shapes too, so one client serves both.

export type Duration = string; // Go duration: "10s", "30s", "500ms". Never a bare number.

export interface MachineServiceCheck {
  type?: 'http' | 'tcp';
  port?: number;
  method?: string;
  path?: string;
  protocol?: 'http' | 'https';
  interval?: Duration;
  timeout?: Duration;
  grace_period?: Duration;
  headers?: { name: string; values: string[] }[];
}

export interface MachinePort {
  port?: number;
  handlers?: string[];
  force_https?: boolean;
}

export interface MachineService {
  protocol?: 'tcp' | 'udp';
  internal_port?: number;
  autostop?: 'off' | 'stop' | 'suspend' | boolean; // responses may still send booleans
  autostart?: boolean;
  min_machines_running?: number;
  concurrency?: { type?: 'connections' | 'requests'; soft_limit?: number; hard_limit?: number };
  ports?: MachinePort[];
  checks?: MachineServiceCheck[];
}

export interface MachineGuest {
  cpu_kind?: 'shared' | 'performance';
  cpus?: number;
  memory_mb?: number;
}

export interface MachineConfig {
  image: string;
  env?: Record<string, string>;
  guest?: MachineGuest;
  metadata?: Record<string, string>;
  restart?: { policy?: 'no' | 'always' | 'on-failure'; max_retries?: number };
  stop_config?: { signal?: StopSignal; timeout?: Duration };
  services?: MachineService[];
  init?: { cmd?: string[]; entrypoint?: string[]; exec?: string[] };
  auto_destroy?: boolean;
}

export type StopSignal = 'SIGHUP' | 'SIGINT' | 'SIGQUIT' | 'SIGKILL' | 'SIGUSR1' | 'SIGUSR2' | 'SIGTERM';

export type MachineState =
  'created' | 'starting' | 'started' | 'stopping' | 'stopped' | 'suspended' | 'failed' | 'destroying' | 'destroyed' | 'replacing' | 'updating';

export interface CheckStatus {
  name: string;
  status: 'passing' | 'warning' | 'critical';
  output?: string;
  updated_at?: string;
}

export interface MachineEvent {
  id?: string;
  type: string; // launch, start, stop, exit, update, restart, destroy...
  status: string;
  source: string; // user, flyd
  timestamp: number; // milliseconds
  request?: Record<string, unknown>;
}

export interface Machine {
  id: string;
  name: string;
  state: MachineState;
  region: string;
  version: string;
  instance_id: string;
  private_ip?: string;
  cordoned?: boolean;
  host_status?: 'ok' | 'unknown' | 'unreachable';
  config: MachineConfig;
  checks?: CheckStatus[];
  events?: MachineEvent[];
  nonce?: string;
  created_at: string;
  updated_at: string;
}

export interface CreateMachineRequest {
  name?: string;
  region?: string;
  config: MachineConfig;
  skip_service_registration?: boolean;
  skip_launch?: boolean;
  lease_ttl?: number;
  min_secrets_version?: number;
}

export interface UpdateMachineRequest extends CreateMachineRequest {
  current_version?: string;
}

export interface WaitMachineResponse {
  ok: boolean;
  state: string;
  version?: string;
  event_id?: string;
}

export interface Lease {
  nonce: string;
  expires_at: number; // unix seconds
  owner: string;
  description?: string;
  version?: string;
}

export interface App {
  id: string;
  name: string;
  status?: string;
  machine_count?: number;
  organization?: { name?: string; slug?: string };
  /** The app's private network (6PN); Rhone's apps each have their own, named after the Rhone app. */
  network?: string;
}

export interface CreateAppRequest {
  name: string;
  org_slug: string;
  network?: string;
  idempotency_key?: string;
}

export interface SecretsUpdateResponse {
  version: number;
  secrets?: { name: string; digest?: string; created_at?: string; updated_at?: string }[];
}

export interface CertificateDetail {
  hostname: string;
  configured?: boolean;
  acme_requested?: boolean;
  status?: string; // pending_validation, pending_ownership, active
  rate_limited_until?: string | null;
  certificates?: { source?: string; status?: string; expires_at?: string; issuer?: string }[];
  dns_requirements?: {
    a?: string[];
    aaaa?: string[];
    cname?: string;
    acme_challenge?: { name: string; target: string };
    ownership?: { name: string; app_value?: string; org_value?: string };
  };
  validation?: Record<string, boolean>;
  validation_errors?: { code?: string; message?: string; remediation?: string }[];
}

export interface IPAssignment {
  ip: string;
  region?: string;
  shared?: boolean;
  service_name?: string;
  created_at?: string;
}

export interface OrgMachine {
  id: string;
  app_name: string;
  state: string;
  region: string;
  config?: Pick<MachineConfig, 'guest' | 'image' | 'metadata'>;
  updated_at: string;
  created_at?: string;
}

export interface OrgMachinesResponse {
  machines: OrgMachine[];
  next_cursor?: string;
  last_updated_at?: string;
  last_machine_id?: string;
}

export interface ErrorResponse {
  error: string;
  status?: string;
}

/** Metadata keys Rhone puts on machines (never fly_*: Fly uses those itself). */
export const META = {
  app: 'rhone_app',
  deployment: 'rhone_deploy',
  launchId: 'rhone_launch_id',
  role: 'rhone_role',
} as const;
