// The local runtime's answers, in the shapes of backend/providers/fly/types.ts (Fly's wire types).
// Fields are listed one by one: a record is never serialised as it is stored.
import type { App, Lease, Machine, OrgMachine } from '../backend/providers/fly/types.ts';
import { parseImageRef } from './images.ts';
import type { Runtime } from './runtime.ts';
import type { AppRecord, LeaseRecord, MachineRecord } from './store.ts';

export const LOCAL_REGION = 'local';
export const LOCAL_PRIVATE_IP = '127.0.0.1';
/** Events a machine answer carries; GET /events gives up to 50. */
const EVENTS_IN_MACHINE = 20;

export interface MachineView extends Machine {
  image_ref?: { registry: string; repository: string; tag: string; labels: Record<string, string> };
  lease?: { owner: string; description?: string; expires_at: number };
}

export interface PresentOptions {
  summary?: boolean;
  includeLease?: boolean;
  /** The nonce of a lease taken by this very request (create with lease_ttl). */
  nonce?: string;
}

function imageRefOf(image: string): MachineView['image_ref'] {
  try {
    const { name, tag } = parseImageRef(image);
    return { registry: 'rhone-local', repository: name, tag, labels: {} };
  } catch {
    return undefined;
  }
}

export function presentMachine(rt: Runtime, m: MachineRecord, options: PresentOptions = {}): MachineView {
  const view: MachineView = {
    id: m.id,
    name: m.name,
    state: m.state,
    region: m.region,
    version: m.version,
    instance_id: m.version,
    private_ip: LOCAL_PRIVATE_IP,
    cordoned: m.cordoned,
    config: m.config,
    created_at: m.createdAt,
    updated_at: m.updatedAt,
  };
  const lease = rt.activeLease(m);
  if (options.includeLease && lease) view.lease = { owner: lease.owner, description: lease.description, expires_at: lease.expiresAt };
  if (options.summary) {
    delete (view as Partial<MachineView>).config;
    return view;
  }
  const imageRef = imageRefOf(m.config.image);
  if (imageRef) view.image_ref = imageRef;
  view.host_status = 'ok';
  view.checks = rt.supervisor.checksOf(m);
  view.events = m.events.slice(0, EVENTS_IN_MACHINE);
  if (options.nonce) view.nonce = options.nonce;
  return view;
}

export function presentLease(lease: LeaseRecord): Lease {
  return { nonce: lease.nonce, expires_at: lease.expiresAt, owner: lease.owner, description: lease.description, version: lease.version };
}

export function presentApp(rt: Runtime, app: AppRecord): App & { volume_count: number; network: string } {
  const machineCount = rt.machinesOf(app.name).filter((m) => m.state !== 'destroyed').length;
  return {
    id: app.id,
    name: app.name,
    status: machineCount > 0 ? 'deployed' : 'pending',
    organization: { slug: app.orgSlug, name: app.orgSlug },
    machine_count: machineCount,
    volume_count: 0,
    network: app.network,
  };
}

export function presentOrgMachine(m: MachineRecord, summary: boolean): OrgMachine & { name: string; private_ip: string; version: string } {
  return {
    id: m.id,
    name: m.name,
    app_name: m.app,
    state: m.state,
    region: m.region,
    private_ip: LOCAL_PRIVATE_IP,
    version: m.version,
    ...(summary ? {} : { config: { guest: m.config.guest, image: m.config.image, metadata: m.config.metadata ?? {} } }),
    created_at: m.createdAt,
    updated_at: m.updatedAt,
  };
}
