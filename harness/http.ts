import { type Agent, type IncomingHttpHeaders, request } from 'node:http';
import { connect } from 'node:net';

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The socket was reused from the agent's keepalive pool. */
  reusedSocket: boolean;
  /** Local port of the client socket: equal ports on one agent mean one connection. */
  localPort: number | undefined;
}

/** One HTTP request over real sockets (node:http), body read fully as UTF-8. */
export function httpRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer; agent?: Agent | false } = {},
): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers, agent: options.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          reusedSocket: req.reusedSocket,
          localPort: req.socket?.localPort,
        }),
      );
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** GET and return the body (throws on a non-2xx status). */
export async function getText(url: string, agent?: Agent): Promise<string> {
  const res = await httpRequest(url, { agent });
  if (res.status < 200 || res.status > 299) throw new Error(`GET ${url}: ${res.status} ${res.body}`);
  return res.body;
}

/**
 * True when nothing accepts connections on 127.0.0.1:`port` (the connect is refused). A plain
 * TCP connect, closed at once: no request is sent, so a probe that lands while a listener is
 * still open is not proxied anywhere and cannot be held by an upstream.
 */
export function connectionRefused(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') resolve(true);
      else reject(error);
    });
  });
}
