import { Agent } from 'node:http';
import { httpRequest } from '../../harness/http.js';
import { sleep } from '../../harness/wait.js';

/** A keepalive agent with one socket: the bench client's own fds and handles stay constant. */
export function singleSocketAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: 1 });
}

/**
 * Poll `url` every millisecond over `agent` until it serves exactly `body`; resolves with the
 * time it was first served (`performance.now()`). Throws after `timeoutMs` from `started`.
 */
export async function servedAt(url: string, body: string, agent: Agent, started: number, timeoutMs = 5000): Promise<number> {
  for (;;) {
    const res = await httpRequest(url, { agent });
    if (res.body === body) return performance.now();
    if (performance.now() - started > timeoutMs) throw new Error(`${url} did not serve the new body within ${timeoutMs} ms`);
    await sleep(1);
  }
}
