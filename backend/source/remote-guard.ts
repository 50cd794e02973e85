// Which git remotes a production Rhone may connect to on a user's behalf (docs/security.md, "Outbound requests").
//
// A git URL is the one outbound address a user chooses. Left unchecked, `https://169.254.169.254/`
// or `https://10.0.0.5:6379/` makes the api and the workers reach into Rhone's own network (cloud
// metadata, Redis, Postgres, the Machines API), and the error or the time git takes tells what
// answers there. So in production a user's remote must resolve to public unicast addresses only,
// and git is pinned to the addresses that were checked: git resolves the host itself, and a DNS
// answer that changes between the check and the connection (rebinding) would otherwise win.
// Local mode skips the address check: it runs on the developer's own machine, where file:// and
// localhost repositories are the point.
import { lookup } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';

/** The addresses a host name resolves to, as the system resolver gives them. */
export type LookupAll = (host: string) => Promise<string[]>;

const systemLookup: LookupAll = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
let currentLookup: LookupAll = systemLookup;

/** Replaces the resolver (tests: outbound DNS is off there); returns what puts the previous one back. */
export function useLookup(fn: LookupAll): () => void {
  const previous = currentLookup;
  currentLookup = fn;
  return () => {
    currentLookup = previous;
  };
}

/** getaddrinfo cannot be canceled; the check gives up waiting on it after this long. */
const LOOKUP_TIMEOUT_MS = 5_000;

export type RemoteProblem = 'credentials' | 'private_address' | 'unresolvable';

/** A remote Rhone will not connect to. The message names the host, never a credential. */
export class UnsafeRemoteError extends Error {
  constructor(
    readonly problem: RemoteProblem,
    message: string,
  ) {
    super(message);
    this.name = 'UnsafeRemoteError';
  }
}

/** Where git may connect for one remote: the host as git sees it, its port, the checked addresses. */
export interface PinnedRemote {
  host: string;
  port: number;
  addresses: string[];
}

/**
 * A URL with a user name or password keeps a secret in the app's settings, shown to every member.
 * Refused in every mode: private GitHub repositories are reached through the GitHub App.
 */
export function assertNoCredentials(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return; // not a URL: the caller's own check says so
  }
  if (parsed.username || parsed.password) {
    throw new UnsafeRemoteError(
      'credentials',
      'The repository URL contains a user name or password: remove the credentials from the URL; private GitHub repositories are reached through the GitHub App (source type "github"), never with a token in the URL.',
    );
  }
}

/** Why this address is not a public unicast one (ipaddr.js names the range), or null if it is. */
export function nonPublicRange(address: string): string | null {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    // process() turns an IPv4-mapped IPv6 address (::ffff:127.0.0.1) into the IPv4 one it carries.
    parsed = ipaddr.process(address);
  } catch {
    return 'not an IP address';
  }
  // An allow-list: loopback, RFC 1918, link-local (169.254/16, fe80::/10), CGNAT (100.64/10),
  // ULA (fc00::/7), 0/8, multicast, reserved, and the IPv6 forms that embed an IPv4 address
  // (NAT64, 6to4, Teredo) are all something other than 'unicast'.
  const range = parsed.range();
  return range === 'unicast' ? null : range;
}

function refusedAddress(host: string, address: string, range: string): UnsafeRemoteError {
  const via = host === address ? '' : ` (it resolves to ${address})`;
  return new UnsafeRemoteError(
    'private_address',
    `The repository host ${host}${via} is a ${range} address, not a public one; Rhone connects only to repositories on the public internet.`,
  );
}

async function resolve(host: string): Promise<string[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), LOOKUP_TIMEOUT_MS);
  });
  try {
    const addresses = await Promise.race([currentLookup(host), timeout]);
    if (addresses.length === 0) throw new Error('no addresses');
    return addresses;
  } catch {
    throw new UnsafeRemoteError('unresolvable', `The repository host ${host} could not be resolved; check the URL.`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Checks a production remote: no credentials, and a host that is, or resolves only to, public
 * addresses (one private answer among several is enough to refuse: curl may pick any of them).
 * Returns what to pin git to.
 */
export async function checkPublicRemote(url: string): Promise<PinnedRemote> {
  assertNoCredentials(url);
  const parsed = new URL(url);
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  const port = parsed.port ? Number(parsed.port) : parsed.protocol === 'http:' ? 80 : 443;
  // RFC 6761: localhost and every name under it are the loopback, whatever a resolver says.
  if (host === 'localhost' || host.endsWith('.localhost')) throw refusedAddress(host, host, 'loopback');
  if (ipaddr.isValid(host)) {
    const range = nonPublicRange(host);
    if (range) throw refusedAddress(host, host, range);
    return { host, port, addresses: [host] };
  }
  const addresses = await resolve(host);
  for (const address of addresses) {
    const range = nonPublicRange(address);
    if (range) throw refusedAddress(host, address, range);
  }
  return { host, port, addresses };
}

/**
 * git settings that hold it to a checked remote: CURLOPT_RESOLVE (git >= 2.37,
 * http.curloptResolve, "[+]HOST:PORT:ADDRESS[,ADDRESS]", IPv6 in brackets as curl's --resolve
 * takes them) so curl connects to these addresses and no other, and no redirects, which could send
 * it to a host that was never checked (git-config(1), http.followRedirects).
 */
export function pinConfig(pin: PinnedRemote): string[] {
  const addresses = pin.addresses.map((a) => (a.includes(':') ? `[${a}]` : a)).join(',');
  const settings = ['http.followRedirects=false'];
  // A literal address needs no pinning: there is nothing for curl to resolve.
  if (!ipaddr.isValid(pin.host)) settings.unshift(`http.curloptResolve=${pin.host}:${pin.port}:${addresses}`);
  return settings;
}
