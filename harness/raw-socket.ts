import { connect, type Socket } from 'node:net';
import { onCleanup } from './cleanup.js';

/** What the server sent on a raw connection, up to the moment it closed it. */
export interface RawExchange {
  /** Everything received, as latin1 text. */
  data: string;
  /** Status code of the first response, if one arrived (`HTTP/1.1 408 ...` → 408). */
  status: number | undefined;
}

/**
 * Open a TCP connection to `127.0.0.1:port`, write `payload` (bytes as given, nothing
 * normalised or completed) and collect what comes back until the server closes the connection.
 * The client never closes first; `closeTimeoutMs` is only a safety net (it rejects: the server
 * kept the connection open).
 */
export function rawExchange(port: number, payload: string | Buffer, options: { closeTimeoutMs?: number } = {}): Promise<RawExchange> {
  const socket: Socket = connect(port, '127.0.0.1');
  onCleanup(() => socket.destroy());
  return new Promise((resolve, reject) => {
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open; received so far: ${JSON.stringify(data.slice(0, 300))}`));
    }, options.closeTimeoutMs ?? 15_000);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('error', () => {}); // a reset after the response is still "closed by the server"
    socket.on('close', () => {
      clearTimeout(timer);
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(data);
      resolve({ data, status: match ? Number(match[1]) : undefined });
    });
    socket.write(payload);
  });
}

/** One complete request on its own connection (`Connection: close`): the raw response. */
export function rawRequest(port: number, target: string, headers: Record<string, string> = {}, method = 'GET'): Promise<RawExchange & { body: string }> {
  const lines = [`${method} ${target} HTTP/1.1`, ...Object.entries({ host: 'localhost', connection: 'close', ...headers }).map(([k, v]) => `${k}: ${v}`)];
  return rawExchange(port, `${lines.join('\r\n')}\r\n\r\n`).then((exchange) => ({
    ...exchange,
    body: exchange.data.slice(exchange.data.indexOf('\r\n\r\n') + 4),
  }));
}
