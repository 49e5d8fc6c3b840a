import { BlockList, isIP } from 'node:net';
import type { WebhookUrlPolicy } from './defaults.js';

/**
 * Where a webhook may be delivered (server-side request forgery defence).
 *
 * A subscriber names a URL; the server then POSTs to it from inside the operator's network. Without rules, that
 * URL could reach what only the server can reach: a cloud metadata endpoint (169.254.169.254), a database on a
 * private address, an admin port on localhost of another container. The rules:
 *
 * - `https:` only; `http:` only to a loopback host (`localhost`, `127.0.0.0/8`, `::1`), so that local development and
 *   the official suite's receiver work. Credentials in the URL are refused (they would be sent to the target).
 * - Every address the host name resolves to must be public: one address in a refused class refuses the URL (an
 *   attacker controls their DNS and may answer with several). IPv4 embedded in IPv6 (mapped, NAT64, 6to4, Teredo's
 *   client) is judged as the IPv4 address it carries.
 * - The addresses found here are the only ones the delivery connects to ({@link pinnedLookup}): a second resolution
 *   at connection time could answer differently (DNS rebinding).
 *
 * Operators can relax two rules: `allowLoopback: false` refuses loopback too (production behind a proxy), and
 * `allowPrivate: true` admits private and unique-local ranges (webhooks to services on the same private network).
 * Link-local, unspecified, multicast and reserved addresses are refused whatever the settings: nothing legitimate
 * receives webhooks there.
 */
export type { WebhookUrlPolicy } from './defaults.js';

export { DEFAULT_WEBHOOK_URL_POLICY } from './defaults.js';

/** One resolved address, as `dns.lookup(host, { all: true })` returns them. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/** Resolves a host name to all its addresses. Injected, so that tests never touch real DNS. */
export type Resolver = (host: string) => Promise<readonly ResolvedAddress[]>;

/** The class of an address, as far as webhook delivery cares. */
export type AddressClass =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'unspecified'
  | 'multicast'
  | 'reserved';

/** A URL admitted for delivery, with the addresses the connection is pinned to. */
export interface AdmittedWebhookUrl {
  readonly url: URL;
  readonly addresses: readonly ResolvedAddress[];
}

/** Why a URL was refused; the server answers `400 WEBHOOK_URL_REJECTED` with `reason` as the detail. */
export class WebhookUrlRejected extends Error {
  readonly code = 'WEBHOOK_URL_REJECTED';
  constructor(readonly reason: string) {
    super(`webhook URL rejected: ${reason}`);
    this.name = 'WebhookUrlRejected';
  }
}

const RANGES: ReadonlyArray<readonly [AddressClass, string, number, 'ipv4' | 'ipv6']> = [
  ['unspecified', '0.0.0.0', 8, 'ipv4'],
  ['private', '10.0.0.0', 8, 'ipv4'],
  ['private', '100.64.0.0', 10, 'ipv4'], // shared address space (carrier-grade NAT)
  ['loopback', '127.0.0.0', 8, 'ipv4'],
  ['link-local', '169.254.0.0', 16, 'ipv4'], // includes cloud metadata endpoints
  ['private', '172.16.0.0', 12, 'ipv4'],
  ['reserved', '192.0.0.0', 24, 'ipv4'], // IETF protocol assignments
  ['reserved', '192.0.2.0', 24, 'ipv4'], // documentation
  ['private', '192.168.0.0', 16, 'ipv4'],
  ['reserved', '198.18.0.0', 15, 'ipv4'], // benchmarking
  ['reserved', '198.51.100.0', 24, 'ipv4'], // documentation
  ['reserved', '203.0.113.0', 24, 'ipv4'], // documentation
  ['multicast', '224.0.0.0', 4, 'ipv4'],
  ['reserved', '240.0.0.0', 4, 'ipv4'], // future use and broadcast
  ['unspecified', '::', 128, 'ipv6'],
  ['loopback', '::1', 128, 'ipv6'],
  ['reserved', '100::', 64, 'ipv6'], // discard-only
  ['reserved', '2001:db8::', 32, 'ipv6'], // documentation
  ['private', 'fc00::', 7, 'ipv6'], // unique local
  ['link-local', 'fe80::', 10, 'ipv6'],
  ['reserved', 'fec0::', 10, 'ipv6'], // deprecated site-local
  ['multicast', 'ff00::', 8, 'ipv6'],
];

const LISTS = new Map<AddressClass, BlockList>();
for (const [cls, net, prefix, family] of RANGES) {
  let list = LISTS.get(cls);
  if (list === undefined) LISTS.set(cls, (list = new BlockList()));
  list.addSubnet(net, prefix, family);
}

/** IPv4 carried inside an IPv6 address: mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::/96), 6to4 (2002::/16), Teredo. */
function embeddedIPv4(address: string): string | undefined {
  const groups = expandIPv6(address);
  if (groups === undefined) return undefined;
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  const zero = (from: number, to: number) => groups.slice(from, to).every((g) => g === 0);
  if (zero(0, 5) && groups[5] === 0xffff) return v4(groups[6]!, groups[7]!); // mapped
  if (zero(0, 6) && (groups[6] !== 0 || groups[7]! > 1)) return v4(groups[6]!, groups[7]!); // compatible (deprecated)
  if (groups[0] === 0x64 && groups[1] === 0xff9b && zero(2, 6)) return v4(groups[6]!, groups[7]!); // NAT64
  if (groups[0] === 0x2002) return v4(groups[1]!, groups[2]!); // 6to4
  if (groups[0] === 0x2001 && groups[1] === 0) return v4(groups[6]! ^ 0xffff, groups[7]! ^ 0xffff); // Teredo client
  return undefined;
}

/** The eight 16-bit groups of an IPv6 address (an embedded dotted IPv4 tail included), or `undefined`. */
function expandIPv6(address: string): number[] | undefined {
  let text = address.toLowerCase();
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted !== null) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    if ([a, b, c, d].some((x) => x > 255)) return undefined;
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  const fill = halves.length === 2 ? 8 - head.length - rest.length : 0;
  if (fill < 0) return undefined;
  const groups = [...head, ...new Array<number>(fill).fill(0), ...rest];
  if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff))
    return undefined;
  return groups;
}

/** Classifies an IP address (IPv4 or IPv6 text). IPv4 carried in IPv6 is judged as that IPv4 address. */
export function classifyAddress(address: string): AddressClass {
  const family = isIP(address);
  if (family === 0) throw new TypeError(`not an IP address: ${address}`);
  if (family === 6) {
    const v4 = embeddedIPv4(address);
    if (v4 !== undefined) return classifyAddress(v4);
  }
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const [cls, list] of LISTS) if (list.check(address, type)) return cls;
  return 'public';
}

function admitted(cls: AddressClass, policy: WebhookUrlPolicy): boolean {
  if (cls === 'public') return true;
  if (cls === 'loopback') return policy.allowLoopback;
  if (cls === 'private') return policy.allowPrivate;
  return false;
}

/**
 * Checks a webhook URL against the policy and resolves its host once. Nothing is connected to: the caller delivers
 * to the returned addresses only (see {@link pinnedLookup}).
 *
 * @throws WebhookUrlRejected with the reason (scheme, credentials, an address class, a name that does not resolve).
 */
export async function admitWebhookUrl(
  raw: string,
  policy: WebhookUrlPolicy,
  resolve: Resolver,
): Promise<AdmittedWebhookUrl> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebhookUrlRejected('not an absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new WebhookUrlRejected(`scheme ${url.protocol} is not allowed (https only)`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new WebhookUrlRejected('credentials in the URL are not allowed');
  }
  // WHATWG URL keeps IPv6 literals in brackets and has already normalised IPv4 shorthands (http://2130706433/).
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  let addresses: readonly ResolvedAddress[];
  if (isIP(host) !== 0) {
    addresses = [{ address: host, family: isIP(host) as 4 | 6 }];
  } else {
    const name = host.endsWith('.') ? host.slice(0, -1) : host;
    if (name === 'localhost' || name.endsWith('.localhost')) {
      // RFC 6761: localhost names are loopback whatever a resolver says.
      addresses = [{ address: '127.0.0.1', family: 4 }];
    } else {
      try {
        addresses = await resolve(name);
      } catch (err) {
        throw new WebhookUrlRejected(`host ${name} does not resolve (${(err as Error).message})`);
      }
      if (addresses.length === 0) throw new WebhookUrlRejected(`host ${name} has no address`);
    }
  }
  let allLoopback = true;
  for (const a of addresses) {
    const cls = classifyAddress(a.address);
    if (!admitted(cls, policy)) {
      throw new WebhookUrlRejected(`${url.hostname} is a ${cls} address (${a.address})`);
    }
    if (cls !== 'loopback') allLoopback = false;
  }
  if (url.protocol === 'http:' && !allLoopback) {
    throw new WebhookUrlRejected('http is allowed to loopback addresses only; use https');
  }
  return { url, addresses };
}

/**
 * A `lookup` for `http.request` / `https.request` that answers with the admitted addresses only, so the connection
 * goes where the check looked (no second resolution, no DNS rebinding). TLS still verifies the certificate against
 * the URL's host name (`servername`).
 */
export function pinnedLookup(addresses: readonly ResolvedAddress[]) {
  return (
    _host: string,
    options: { all?: boolean; family?: number } | number,
    callback: (err: Error | null, address: string | ResolvedAddress[], family?: number) => void,
  ): void => {
    const wanted = typeof options === 'number' ? options : (options.family ?? 0);
    const usable = addresses.filter((a) => wanted === 0 || a.family === wanted);
    if (usable.length === 0) {
      callback(
        Object.assign(new Error('no pinned address of the requested family'), { code: 'ENOTFOUND' }),
        '',
      );
      return;
    }
    if (typeof options === 'object' && options.all)
      callback(
        null,
        usable.map((a) => ({ ...a })),
      );
    else callback(null, usable[0]!.address, usable[0]!.family);
  };
}
