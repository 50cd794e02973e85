// Request bodies the local Machines API accepts, checked as strictly as Fly would: a bad duration
// or signal is a 400 here rather than a machine that misbehaves later. Unknown fields pass
// through untouched, as Fly keeps the parts of a config it does not act on.
import { z } from 'zod';
import type { MachineConfig } from '../../backend/providers/fly/types.ts';
import { parseDuration } from '../durations.ts';

export const SIGNALS = ['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGKILL', 'SIGUSR1', 'SIGUSR2', 'SIGTERM'] as const;
const signal = z.enum(SIGNALS);
const port = z.number().int().min(1).max(65535);
const duration = z
  .string('must be a Go duration string such as "10s" (a bare number would mean nanoseconds)')
  .refine((s) => parseDuration(s) !== undefined, 'must be a Go duration such as "10s", "500ms" or "1m30s"');
const stringMap = z.record(z.string(), z.string());

const check = z.looseObject({
  type: z.enum(['http', 'tcp']).optional(),
  port: port.optional(),
  method: z.string().optional(),
  path: z.string().optional(),
  protocol: z.string().optional(),
  interval: duration.optional(),
  timeout: duration.optional(),
  grace_period: duration.optional(),
  headers: z.array(z.looseObject({ name: z.string(), values: z.array(z.string()) })).optional(),
});

const service = z.looseObject({
  protocol: z.string().optional(),
  internal_port: port.optional(),
  autostop: z.union([z.enum(['off', 'stop', 'suspend']), z.boolean()]).optional(),
  autostart: z.boolean().optional(),
  min_machines_running: z.number().int().min(0).optional(),
  ports: z.array(z.looseObject({ port: port.optional(), handlers: z.array(z.string()).optional() })).optional(),
  checks: z.array(check).optional(),
});

export const machineConfig = z.looseObject({
  image: z.string().min(1, 'image is required'),
  env: stringMap.optional(),
  metadata: stringMap.optional(),
  guest: z.looseObject({ cpu_kind: z.string().optional(), cpus: z.number().int().optional(), memory_mb: z.number().int().optional() }).optional(),
  restart: z.looseObject({ policy: z.enum(['no', 'always', 'on-failure']).optional(), max_retries: z.number().int().min(0).optional() }).optional(),
  stop_config: z.looseObject({ signal: signal.optional(), timeout: duration.optional() }).optional(),
  services: z.array(service).optional(),
  checks: z.record(z.string(), check).optional(),
  init: z
    .looseObject({
      cmd: z.array(z.string()).optional(),
      entrypoint: z.array(z.string()).optional(),
      exec: z.array(z.string()).optional(),
    })
    .optional(),
  auto_destroy: z.boolean().optional(),
});

export const createMachineBody = z.looseObject({
  name: z.string().min(1).max(63).optional(),
  region: z.string().min(1).optional(),
  config: machineConfig,
  skip_service_registration: z.boolean().optional(),
  skip_launch: z.boolean().optional(),
  skip_secrets: z.boolean().optional(),
  lease_ttl: z.number().int().min(1).optional(),
  min_secrets_version: z.number().int().min(0).optional(),
});

export const updateMachineBody = createMachineBody.extend({ current_version: z.string().optional() });

export const stopBody = z.looseObject({ signal: signal.optional(), timeout: duration.optional() });

export const leaseBody = z.looseObject({ ttl: z.number().int().min(1).optional(), description: z.string().optional() });

export const metadataPatchBody = z.looseObject({
  metadata: z.record(z.string(), z.string().nullable()),
  machine_version: z.string().optional(),
});

export const metadataValueBody = z.looseObject({ value: z.string() });

export const createAppBody = z.looseObject({
  name: z.string().optional(),
  org_slug: z.string().min(1, 'org_slug is required'),
  network: z.string().optional(),
  idempotency_key: z.string().min(1).optional(),
});

export const secretsBody = z.looseObject({ values: z.record(z.string(), z.string().nullable()) });

export const certificateBody = z.looseObject({ hostname: z.string().min(1) });

export const ipBody = z.looseObject({
  type: z.enum(['v4', 'v6', 'shared_v4', 'private_v6', 'egress_v4', 'egress_v6', 'egress_pair']),
  region: z.string().optional(),
  service_name: z.string().optional(),
  org_slug: z.string().optional(),
  network: z.string().optional(),
});

/** A config as the runtime keeps it: a deep copy, with autostop booleans written as Fly's strings. */
export function normalizeConfig(config: z.infer<typeof machineConfig>): MachineConfig {
  const copy = structuredClone(config) as MachineConfig;
  for (const s of copy.services ?? []) {
    if (s.autostop === true) s.autostop = 'stop';
    if (s.autostop === false) s.autostop = 'off';
  }
  return copy;
}
