import { isIP } from 'node:net';

/** A parsed `HOST:PORT` listen address. `host` has no brackets (`::1`, not `[::1]`). */
export interface ListenAddress {
  host: string;
  port: number;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** The last label of a host name is all digits (a trailing dot aside). */
const NUMERIC_LAST_LABEL = /(?:^|\.)\d+\.?$/;

/**
 * Parse `HOST:PORT` (`127.0.0.1:8080`, `[::1]:8080`, `localhost:8080`). Port 0 asks the OS for a
 * free port. Pure: returns an error message instead of throwing, for schema use.
 *
 * A host whose last label is a number is an IPv4 address and must be a valid dotted quad
 * (`256.1.1.1`, `1.2.3.4.5`, `127.1`, `010.0.0.1` are errors), as the WHATWG URL host parser
 * treats such hosts as addresses: otherwise they pass as host names and only fail, or bind
 * somewhere unexpected (`inet_aton` reads `127.1` and octal `010`), when the listener binds.
 */
export function parseListenAddress(text: string): ListenAddress | { error: string } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) return { error: 'expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080' };
  const host = (m[1] ?? m[2]) as string;
  const port = Number(m[3]);
  if (port > 65535) return { error: `port ${port} is out of range 0-65535` };
  if (m[1] !== undefined && isIP(host) !== 6) return { error: `${host} is not an IPv6 address` };
  if (m[2] !== undefined && NUMERIC_LAST_LABEL.test(host) && isIP(host) !== 4) {
    return { error: `${host} is not a valid IPv4 address (a host ending in a number must be one, e.g. 127.0.0.1)` };
  }
  if (m[2] !== undefined && isIP(host) === 0 && !HOSTNAME.test(host)) return { error: `${host} is not a valid host` };
  return { host, port };
}

/** True for addresses only reachable from this machine (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** True when `listen` (`HOST:PORT`) is valid and its host is loopback (see `isLoopbackHost`). */
export function isLoopbackAddress(listen: string): boolean {
  const parsed = parseListenAddress(listen);
  return !('error' in parsed) && isLoopbackHost(parsed.host);
}

/** `HOST:PORT` with IPv6 hosts bracketed, for URLs and logs. */
export function formatAddress(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** One DNS label as hosts send it in `Host` (ASCII: names beyond it arrive in their xn-- form). */
const HOST_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/**
 * Why a route's `host` pattern can never match a request, or undefined when it can. Requests are
 * matched on their `Host` lowercased, without port or trailing dot (`normalizeHost`), against an
 * exact name or `*.` followed by a domain (any subdomain of it): so a port, a trailing dot, a `*`
 * anywhere else (`*example.com`), an IPv6 address without brackets or a name that is not ASCII
 * would never match anything.
 */
export function hostPatternProblem(pattern: string): string | undefined {
  if (/[\s/?#@]/.test(pattern) || pattern.includes('://')) return 'must be a host name without scheme or path';
  if (pattern.startsWith('[') && pattern.endsWith(']')) return isIP(pattern.slice(1, -1)) === 6 ? undefined : `${pattern} is not an IPv6 address`;
  if (isIP(pattern) === 6) return `never matches: write an IPv6 address in brackets ([${pattern}]), as requests send it`;
  if (/:\d*$/.test(pattern)) return 'never matches: the port is not part of the match (requests are matched on the host alone)';
  if (pattern.endsWith('.')) return `never matches: requests are matched without the trailing dot (write ${pattern.replace(/\.+$/, '')})`;
  const name = pattern.startsWith('*.') ? pattern.slice(2) : pattern;
  if (name.includes('*')) return 'never matches: a wildcard is only a leading "*." before a domain (*.example.com)';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range, on purpose
  if (/[^\x00-\x7f]/.test(name)) return 'never matches: write an internationalised name in its ASCII form (xn--...), as requests send it';
  if (name.length > 253 || !name.split('.').every((label) => HOST_LABEL.test(label))) return `${pattern} is not a valid host name`;
  return undefined;
}

/**
 * The addresses a listen host can bind: a literal address (IPv6 in its canonical form), both
 * loopback addresses for `localhost` (it resolves to either), a wildcard (`0.0.0.0`: every IPv4
 * address; `::`: every address, IPv4 included, as Node binds it dual-stack), or, for any other
 * name, the lowercased name (its addresses are unknown before it is resolved).
 */
function bindTargets(host: string): { wildcard?: 4 | 6; addresses: string[] } {
  const lower = host.toLowerCase().replace(/\.$/, '');
  if (lower === 'localhost') return { addresses: ['127.0.0.1', '::1'] };
  const family = isIP(lower);
  if (family === 6) {
    const canonical = URL.canParse(`http://[${lower}]`) ? new URL(`http://[${lower}]`).hostname.slice(1, -1) : lower;
    return canonical === '::' ? { wildcard: 6, addresses: [] } : { addresses: [canonical] };
  }
  if (lower === '0.0.0.0') return { wildcard: 4, addresses: [] };
  return { addresses: [lower] };
}

/** An address already recorded in a `BindPlan`, and who wants it. */
export interface PlannedBind {
  listen: string;
  owner: string;
}

/**
 * The addresses a config binds, checked as they will bind, in linear time: `add` tells whether
 * an address is one recorded already spelled differently (`same`: `LOCALHOST:80` and
 * `localhost:80`, `[0::1]:80` and `[::1]:80`) or cannot be bound beside one (`clash`:
 * `localhost:80` beside `127.0.0.1:80`, `0.0.0.0:80` beside any IPv4 address on port 80,
 * `[::]:80` beside anything on port 80). Port 0 never clashes (each bind gets a port of its
 * own); names other than `localhost` are compared as names, their addresses being unknown here.
 */
export class BindPlan {
  readonly #ports = new Map<
    number,
    {
      spellings: Map<string, PlannedBind>;
      addresses: Map<string, PlannedBind>;
      wildcard4?: PlannedBind;
      wildcard6?: PlannedBind;
      first: PlannedBind;
      firstV4?: PlannedBind;
    }
  >();

  /**
   * Record `listen` (a valid `HOST:PORT`) for `owner` (`listeners.1`); returns the earlier
   * address it is the same as or clashes with, if any (it is recorded either way).
   */
  add(listen: string, owner: string): (PlannedBind & { relation: 'same' | 'clash' }) | undefined {
    const parsed = parseListenAddress(listen);
    if ('error' in parsed || parsed.port === 0) return undefined;
    const entry: PlannedBind = { listen, owner };
    const targets = bindTargets(parsed.host);
    const spelling = `${targets.wildcard ?? ''}|${[...targets.addresses].sort().join(',')}`;
    const v4 = targets.wildcard === 4 || targets.addresses.some((address) => isIP(address) === 4);
    let port = this.#ports.get(parsed.port);
    if (!port) {
      port = { spellings: new Map(), addresses: new Map(), first: entry };
      this.#ports.set(parsed.port, port);
    }
    const same = port.spellings.get(spelling);
    const clash =
      port.wildcard6 ??
      (targets.wildcard === 6 && port.spellings.size > 0 ? port.first : undefined) ??
      (v4 ? port.wildcard4 : undefined) ??
      (targets.wildcard === 4 ? port.firstV4 : undefined) ??
      targets.addresses.map((address) => port.addresses.get(address)).find((found) => found !== undefined);
    port.spellings.set(spelling, port.spellings.get(spelling) ?? entry);
    for (const address of targets.addresses) if (!port.addresses.has(address)) port.addresses.set(address, entry);
    if (targets.wildcard === 4) port.wildcard4 ??= entry;
    if (targets.wildcard === 6) port.wildcard6 ??= entry;
    if (v4) port.firstV4 ??= entry;
    if (same) return { ...same, relation: 'same' };
    return clash ? { ...clash, relation: 'clash' } : undefined;
  }
}
