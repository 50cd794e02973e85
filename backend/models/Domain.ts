import { TimestampedModel } from './BaseModel.ts';
import type { CertificateDetail } from '../providers/fly/types.ts';
import type { DomainStatus } from '../lib/api-types.ts';

/**
 * pending_dns: the records to create are not (all) there yet; pending_validation: DNS is right and
 * the certificate is being issued; active: served over TLS; failed: Rhone stopped checking.
 */
export { DOMAIN_STATUSES, type DomainStatus } from '../lib/api-types.ts';

export class Domain extends TimestampedModel {
  static tableName = 'domains';
  static jsonAttributes = ['certificate', 'dnsRequirements'];

  id!: string;
  appId!: string;
  /** Punycode, lowercase; a wildcard starts with "*.". */
  hostname!: string;
  status!: DomainStatus;
  /** Fly's last answer about the certificate. */
  certificate!: CertificateDetail | null;
  dnsRequirements!: CertificateDetail['dns_requirements'] | null;
  lastError!: string | null;
  nextCheckAt!: Date | null;
  activeAt!: Date | null;
  checksStartedAt!: Date;
  checkAttempts!: number;
  rateLimitedUntil!: Date | null;
  lastCheckedAt!: Date | null;
}
