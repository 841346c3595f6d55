import { createServer } from 'node:net';

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
