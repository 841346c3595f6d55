import { readFile } from 'node:fs/promises';
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
 * A TCP port free on 127.0.0.1 right now (bound to port 0, read, released). Another process can
 * take it before the caller binds it; on a test machine that is rare enough.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await listenOn(server, 0, host);
  const { port } = server.address() as { port: number };
  await closeServer(server);
  return port;
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
 * `count` distinct ports free on 127.0.0.1 and outside the kernel's ephemeral range, so that no
 * other process binding port 0 (every other test run on this machine) is handed one of them
 * while a long run keeps freeing and rebinding them. Linux reads the range from
 * /proc/sys/net/ipv4/ip_local_port_range; elsewhere the IANA dynamic range is assumed.
 * @throws when fewer than `count` such ports are free
 */
export async function stablePorts(count: number): Promise<number[]> {
  const range = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').then(
    (text) => text.trim().split(/\s+/).map(Number) as [number, number],
    () => [49152, 65535] as [number, number],
  );
  // Below the range when there is room (Linux: 10000-32767), else above it.
  const candidates = range[0] > 11_024 ? rangeOf(10_000, range[0]) : rangeOf(range[1] + 1, 65_536);
  const ports: number[] = [];
  while (ports.length < count && candidates.length > 0) {
    const [port] = candidates.splice(Math.floor(Math.random() * candidates.length), 1);
    if (await bindable(port!)) ports.push(port!);
  }
  if (ports.length < count) throw new Error(`no ${count} free ports outside the ephemeral range ${range.join('-')}`);
  return ports;
}

function rangeOf(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

async function bindable(port: number): Promise<boolean> {
  const server = createServer();
  try {
    await listenOn(server, port);
  } catch {
    return false;
  }
  await closeServer(server);
  return true;
}
