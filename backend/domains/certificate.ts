// What Fly's answer about a certificate means for the user: the DNS records to create (from
// `dns_requirements`), Rhone's status for the domain, and, while it is not active, what is wrong.
import type { CertificateDetail } from '../providers/fly/types.ts';
import type { DomainStatus } from '../models/index.ts';
import { displayHostname } from './hostname.ts';
import type { DnsRecord } from '../lib/api-types.ts';

// The record's shape is the API's (backend/lib/api-types.ts, shared with the dashboard).
export type { DnsRecord };

type Requirements = NonNullable<CertificateDetail['dns_requirements']>;

/** A name with two labels ("example.com") is usually a zone apex, where DNS allows no CNAME. */
const looksLikeApex = (hostname: string) => hostname.replace(/^\*\./, '').split('.').length === 2;

export function dnsRecords(hostname: string, req: Requirements | null | undefined): DnsRecord[] {
  if (!req) return [];
  const records: DnsRecord[] = [];
  const shown = displayHostname(hostname);
  if (req.cname) {
    const note = looksLikeApex(hostname)
      ? `Points ${shown} at the app. At a zone apex most DNS providers allow no CNAME (some offer ALIAS or ANAME): use the A and AAAA records instead.`
      : `Points ${shown} at the app. Or create the A and AAAA records instead.`;
    records.push({ type: 'CNAME', name: hostname, value: req.cname, purpose: 'routing', choice: 'cname', note });
  }
  const addressNote = req.cname ? `Instead of the CNAME: points ${shown} at the app's addresses.` : `Points ${shown} at the app.`;
  for (const a of req.a ?? []) records.push({ type: 'A', name: hostname, value: a, purpose: 'routing', choice: 'addresses', note: addressNote });
  for (const a of req.aaaa ?? []) records.push({ type: 'AAAA', name: hostname, value: a, purpose: 'routing', choice: 'addresses', note: addressNote });
  if (req.acme_challenge) {
    records.push({
      type: 'CNAME',
      name: req.acme_challenge.name,
      value: req.acme_challenge.target,
      purpose: 'acme_challenge',
      note: hostname.startsWith('*.')
        ? "Required for a wildcard: lets Let's Encrypt validate the certificate through DNS."
        : "Lets Let's Encrypt validate the certificate through DNS, even before traffic reaches the app.",
    });
  }
  if (req.ownership?.app_value) {
    records.push({
      type: 'TXT',
      name: req.ownership.name,
      value: req.ownership.app_value,
      purpose: 'ownership',
      note: 'Proves the domain is yours; needed when the hostname does not point straight at the app (behind a proxy or CDN).',
    });
  }
  return records;
}

/** Rhone's status from Fly's answer (a domain only fails when Rhone stops checking it). */
export function statusOf(cert: CertificateDetail): Exclude<DomainStatus, 'failed'> {
  if (cert.status === 'active') return 'active';
  if (cert.status === 'pending_ownership') return 'pending_dns';
  const v = cert.validation ?? {};
  return v.dns_configured || v.ownership_txt_configured ? 'pending_validation' : 'pending_dns';
}

/** What still stands between the domain and an active certificate, in words the user can act on. */
export function whatIsWrong(hostname: string, cert: CertificateDetail | null, now = new Date()): string {
  const shown = displayHostname(hostname);
  if (!cert) return `Rhone has not been able to request the certificate for ${shown} from Fly yet.`;
  const parts: string[] = [];
  for (const e of cert.validation_errors ?? []) {
    const text = [e.message, e.remediation].filter(Boolean).join('. ');
    if (text) parts.push(text.endsWith('.') ? text : `${text}.`);
  }
  if (parts.length === 0) {
    const v = cert.validation ?? {};
    if (cert.status === 'pending_ownership' && !v.ownership_txt_configured) parts.push(`Fly needs the _fly-ownership TXT record to prove ${shown} is yours.`);
    else if (!v.dns_configured && !v.ownership_txt_configured)
      parts.push(`${shown} does not point at the app yet: create the CNAME record (or the A and AAAA records) shown, and the _acme-challenge CNAME.`);
    else parts.push(`DNS for ${shown} is in place; the certificate authority has not issued the certificate yet.`);
  }
  const limited = cert.rate_limited_until ? new Date(cert.rate_limited_until) : null;
  if (limited && limited > now) parts.push(`Let's Encrypt rate-limits new certificates for this domain until ${limited.toISOString()}; Fly tries again then.`);
  return parts.join(' ');
}
