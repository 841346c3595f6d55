import { Agent, request } from 'node:http';

/** A keepalive agent with one socket: the bench client's own fds and handles stay constant. */
export function singleSocketAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: 1 });
}

/** One request, body read as text. */
export function fetchText(url: string, options: { method?: string; agent?: Agent } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', agent: options.agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Poll `url` every millisecond over `agent` until it serves exactly `body`; resolves with the
 * time it was first served (`performance.now()`). Throws after `timeoutMs` from `started`.
 */
export async function servedAt(url: string, body: string, agent: Agent, started: number, timeoutMs = 5000): Promise<number> {
  for (;;) {
    const res = await fetchText(url, { agent });
    if (res.body === body) return performance.now();
    if (performance.now() - started > timeoutMs) throw new Error(`${url} did not serve the new body within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}
