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
