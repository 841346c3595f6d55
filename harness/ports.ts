import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { onCleanup } from './cleanup.js';

/**
 * Bind `server` to `port` on `host`; resolves once it listens.
 * @throws the bind error (`EADDRINUSE`, `EACCES`)
 */
export function listenOn(server: Pick<Server, 'once' | 'off' | 'listen'>, port: number, host = '127.0.0.1'): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
}

/**
 * The ports this process hands out: those outside the kernel's ephemeral range (Linux:
 * /proc/sys/net/ipv4/ip_local_port_range, else the IANA dynamic range 49152-65535), below it
 * when there is room (Linux default: 10000-32767), else above it. Ports from bind(0) and the
 * local ends of outgoing connections come from the ephemeral range, so no other process's
 * client socket or port-0 server can take a port between the moment it is handed out and the
 * moment the test binds it (the EADDRINUSE clashes of bind-0-and-release).
 */
function portSpan(): { from: number; size: number } {
  let range: [number, number] = [49152, 65535];
  try {
    range = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number];
  } catch {}
  const [from, to] = range[0] > 11_024 ? [10_000, range[0]] : [range[1] + 1, 65_536];
  return { from, size: Math.max(0, to - from) };
}

let span: { from: number; size: number } | undefined;
/** Ports handed out so far; the next candidate is `start + handedOut` (mod the span). */
let handedOut = 0;
let start: number | undefined;

/**
 * The next port of this process's walk over the span that binds on `host` right now. Each
 * process starts at its own offset (from its pid) and never hands out a port twice until it
 * has walked the whole span (about 22,000 ports on Linux), so two calls in one test never
 * return the same port even when the first has not been bound yet; parallel test runs start
 * far apart and skip what the others hold bound.
 * @throws when no port of the span binds
 */
async function nextPort(host: string): Promise<number> {
  span ??= portSpan();
  start ??= (process.pid * 7919) % span.size;
  for (let tried = 0; tried < span.size; tried += 1) {
    const port = span.from + ((start + handedOut) % span.size);
    handedOut += 1;
    if (await bindable(port, host)) return port;
  }
  throw new Error(`no free port on ${host} in ${span.from}-${span.from + span.size - 1}`);
}

/**
 * A TCP port free on `host` (default 127.0.0.1) right now, outside the ephemeral range and
 * never handed out before by this process (see `nextPort`): a test may ask for several before
 * it binds any of them.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return nextPort(host);
}

/**
 * Hold `port` on 127.0.0.1 with a server nobody answers on, as another process would (a port
 * clash for the daemon). Released after the test, or earlier with `release()` (idempotent).
 * @throws the bind error (`EADDRINUSE`) when the port is not free
 */
export async function occupyPort(port: number): Promise<{ release(): Promise<void> }> {
  const server = createServer();
  await listenOn(server, port);
  const release = () => closeServer(server);
  onCleanup(release);
  return { release };
}

/**
 * `count` distinct ports free on 127.0.0.1 for a long run that keeps freeing and rebinding
 * them (the model spec): `freePort`'s ports, outside the ephemeral range, so that no other
 * process binding port 0 is handed one of them meanwhile.
 * @throws when fewer than `count` such ports are free
 */
export async function stablePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < count; i += 1) ports.push(await nextPort('127.0.0.1'));
  return ports;
}

async function bindable(port: number, host: string): Promise<boolean> {
  const server = createServer();
  try {
    await listenOn(server, port, host);
  } catch {
    return false;
  }
  await closeServer(server);
  return true;
}
