// Certificates in local mode. There is no TLS locally: a "certificate" is the record that routes
// a hostname to an app. A `.localhost` name is active at once (it always resolves here); any other
// becomes active once its DNS resolves to this machine, checked when the certificate is read or
// checked (Rhone's certificate checker calls check). The resolver is injectable, for tests.
import { lookup } from 'node:dns/promises';
import os from 'node:os';
import type { CertificateDetail } from '../backend/providers/fly/types.ts';
import { isLocalhostName } from '../backend/domains/hostname.ts';
import type { CertificateRecord } from './store.ts';

/** The addresses a hostname resolves to; none when it does not resolve. */
export type HostResolver = (hostname: string) => Promise<string[]>;

const HOSTNAME = /^(?=.{1,253}$)(\*\.)?([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export function normalizeHostname(raw: string): string | undefined {
  const h = raw.trim().toLowerCase().replace(/\.$/, '');
  return HOSTNAME.test(h) ? h : undefined;
}

export function isLocalAddress(address: string): boolean {
  const a = address.toLowerCase().replace(/^::ffff:/, '');
  if (a === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a)) return true;
  return Object.values(os.networkInterfaces()).some((list) => list?.some((i) => i.address.toLowerCase() === a));
}

export async function resolveWithDns(hostname: string): Promise<string[]> {
  try {
    return (await lookup(hostname, { all: true })).map((r) => r.address);
  } catch {
    return [];
  }
}

/** Re-checks a pending certificate's DNS; an active one stays active. */
export async function refreshCertificate(cert: CertificateRecord, resolve: HostResolver = resolveWithDns): Promise<boolean> {
  if (cert.status === 'active') return false;
  const now = new Date().toISOString();
  if (isLocalhostName(cert.hostname)) {
    Object.assign(cert, { status: 'active', resolved: ['127.0.0.1', '::1'], updatedAt: now });
    return true;
  }
  // A wildcard is active when a name under it resolves here.
  const addresses = await resolve(cert.hostname.replace(/^\*\./, 'rhone-check.'));
  const local = addresses.length > 0 && addresses.every(isLocalAddress);
  Object.assign(cert, { resolved: addresses, updatedAt: now, status: local ? 'active' : 'pending_validation' });
  return true;
}

export function presentCertificate(cert: CertificateRecord): CertificateDetail & { dns_provider: string } {
  const active = cert.status === 'active';
  const resolvedText = cert.resolved.length ? `it resolves to ${cert.resolved.join(', ')}` : 'it does not resolve';
  return {
    hostname: cert.hostname,
    configured: active,
    acme_requested: true,
    status: cert.status,
    dns_provider: 'local',
    certificates: active ? [{ source: 'fly', status: 'active', issuer: 'rhone-local (plain HTTP, no TLS locally)' }] : [],
    dns_requirements: { a: ['127.0.0.1'], aaaa: ['::1'] },
    validation: { dns_configured: active, alpn_configured: false, http_configured: false, ownership_txt_configured: false },
    validation_errors: active
      ? []
      : [
          {
            code: 'dns_not_local',
            message: `${cert.hostname} does not point at this machine: ${resolvedText}`,
            remediation: `Point ${cert.hostname} at 127.0.0.1 (an A record, or a line in /etc/hosts), then check again`,
          },
        ],
  };
}

export function presentCertificateCheck(cert: CertificateRecord): Record<string, unknown> {
  return {
    ...presentCertificate(cert),
    dns_records: {
      a: cert.resolved.filter((a) => !a.includes(':')),
      aaaa: cert.resolved.filter((a) => a.includes(':')),
      cname: [],
      resolved_addresses: cert.resolved,
    },
  };
}

export function presentCertificateSummary(cert: CertificateRecord): Record<string, unknown> {
  const active = cert.status === 'active';
  return {
    hostname: cert.hostname,
    status: cert.status,
    configured: active,
    acme_requested: true,
    has_fly_certificate: active,
    has_custom_certificate: false,
    dns_provider: 'local',
    acme_dns_configured: false,
    acme_alpn_configured: false,
    acme_http_configured: false,
    ownership_txt_configured: false,
    created_at: cert.createdAt,
    updated_at: cert.updatedAt,
  };
}
