import type { ServerResponse } from 'node:http';

// The short JSON answers every hotconf HTTP server gives (listeners, the proxy, the admin API).

/** A short JSON response; `close` asks the client to drop the connection. */
export function sendJson(res: ServerResponse, status: number, body: unknown, close: boolean): void {
  const payload = Buffer.from(JSON.stringify(body));
  const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(payload.byteLength) };
  if (close) headers.connection = 'close';
  res.writeHead(status, headers);
  res.end(payload);
}

/**
 * Answer a request that failed: `status` with a JSON `body` while no response head was sent,
 * else cut the connection (the head is out, only the connection can still tell the client).
 */
export function sendFailure(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) res.destroy();
  else sendJson(res, status, body, false);
}
