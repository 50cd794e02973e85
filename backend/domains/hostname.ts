// What a custom domain's hostname may be. Stored as lowercase punycode (what DNS and Fly see),
// shown in Unicode. Each refusal says what is wrong and what to type instead.
import { domainToASCII, domainToUnicode } from 'node:url';

export const MAX_DOMAINS_PER_APP = 10;

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const EXAMPLE = 'such as www.example.com';

export type ParsedHostname = { ok: true; hostname: string; wildcard: boolean } | { ok: false; message: string };

const refuse = (message: string): ParsedHostname => ({ ok: false, message });

/** A well-formed DNS name, optionally a wildcard ("*.example.com"), as lowercase punycode. */
export function parseHostname(raw: string): ParsedHostname {
  const input = raw.trim().replace(/\.$/, '');
  if (input === '') return refuse(`is required: the hostname to serve the app on, ${EXAMPLE}`);
  if (/[/:@?#]/.test(input)) return refuse(`must be a hostname only, ${EXAMPLE}: no scheme (https://), port, path or IPv6 address`);
  const wildcard = input.startsWith('*.');
  const rest = wildcard ? input.slice(2) : input;
  if (rest.includes('*')) return refuse('may contain "*" only as its whole first label, as in *.example.com');
  if (/^\d+(\.\d+){3}$/.test(rest)) return refuse(`is an IP address; enter a hostname, ${EXAMPLE}, and point it at the app`);
  const ascii = domainToASCII(rest);
  if (!ascii) return refuse(`"${input}" is not a valid domain name: use letters, digits and hyphens in dot-separated labels, ${EXAMPLE}`);
  if (ascii.length > 253 - (wildcard ? 2 : 0)) return refuse('must be at most 253 characters long (in its punycode form)');
  const labels = ascii.split('.');
  if (wildcard && labels.length < 2) return refuse('a wildcard needs a domain of at least two labels under it, as in *.example.com');
  if (labels.length < 2) return refuse(`needs a dot: enter a full domain name, ${EXAMPLE}`);
  for (const label of labels) {
    if (label === '') return refuse('has an empty label (two dots in a row, or a leading dot)');
    if (label.length > 63) return refuse(`has a label longer than 63 characters ("${label.slice(0, 20)}…")`);
    if (!LABEL.test(label))
      return refuse(`has an invalid label "${domainToUnicode(label) || label}": labels are letters, digits and hyphens, and do not start or end with a hyphen`);
  }
  if (/^\d+$/.test(labels[labels.length - 1])) return refuse('ends in a number, which no top-level domain is');
  return { ok: true, hostname: wildcard ? `*.${ascii}` : ascii, wildcard };
}

/** The hostname as people read it: internationalised labels in Unicode. */
export function displayHostname(hostname: string): string {
  if (hostname.startsWith('*.')) return `*.${displayHostname(hostname.slice(2))}`;
  return domainToUnicode(hostname) || hostname;
}

/**
 * Why the hostname may not be used under Rhone's own apps domain, or undefined when it may. In
 * local mode the apps domain is "localhost": `{slug}.localhost` is the app's own address, and
 * names two labels deep or more (www.shop.localhost) are allowed, for trying domains out.
 */
export function ownDomainProblem(hostname: string, appsDomain: string, isLocal: boolean, appSlug: string): string | undefined {
  const base = hostname.startsWith('*.') ? hostname.slice(2) : hostname;
  const suffix = `.${appsDomain}`;
  if (base !== appsDomain && !base.endsWith(suffix)) return undefined;
  const depth = hostname === appsDomain ? 0 : hostname.slice(0, -suffix.length).split('.').length;
  if (isLocal && appsDomain === 'localhost') {
    if (depth >= 2) return undefined;
    return `is where Rhone serves apps locally ({slug}.localhost); to try a custom domain, use a name two labels deep or more, such as www.${appSlug}.localhost`;
  }
  return `is under Rhone's own domain ${appsDomain}, which serves the app at ${appSlug}.${appsDomain} already; add a domain you own instead`;
}

/** `.localhost` names always resolve to this machine: in local mode they are free to try on any plan. */
export function isLocalhostName(hostname: string): boolean {
  return hostname === 'localhost' || hostname.endsWith('.localhost');
}
