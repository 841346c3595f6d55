import { createServer } from 'node:net';
import { onCleanup } from './cleanup.js';

/**
 * A TCP port free on 127.0.0.1 right now (bound to port 0, read, released). Another process can
 * take it before the caller binds it; on a test machine that is rare enough.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Hold `port` on 127.0.0.1 with a server nobody answers on, as another process would (a port
 * clash for the daemon). Released after the test, or earlier with `release()` (idempotent).
 * @throws the bind error (`EADDRINUSE`) when the port is not free
 */
export async function occupyPort(port: number): Promise<{ release(): Promise<void> }> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const release = () => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
  onCleanup(release);
  return { release };
}
