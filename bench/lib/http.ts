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
