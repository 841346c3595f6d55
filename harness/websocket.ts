import { createServer } from 'node:http';
import WebSocket, { WebSocketServer } from 'ws';
import { onCleanup } from './cleanup.js';
import { TrackedServer } from './tracked-server.js';

/**
 * A WebSocket echo upstream (the `ws` package) on 127.0.0.1: every message comes back as sent.
 * An upgrade to `/deny` is refused with `403` (as an auth check would), any other plain request
 * gets 404. Closed after the test, every connection destroyed.
 */
export class WsEchoUpstream {
  /** Close codes its sockets received from the peer (hotconf), in order. */
  readonly closeCodes: number[] = [];
  /** Protocol errors its sockets saw (a peer that broke the framing), in order. */
  readonly errors: Error[] = [];
  readonly #server: TrackedServer;
  readonly #wss = new WebSocketServer({ noServer: true });
  #port = 0;

  private constructor() {
    const server = createServer((_req, res) => {
      res.writeHead(404, { 'content-length': '0' });
      res.end();
    });
    server.on('upgrade', (req, socket, head) => {
      if (req.url === '/deny') {
        socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 6\r\nx-denied-by: upstream\r\n\r\ndenied');
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
        ws.on('close', (code) => this.closeCodes.push(code));
        // A protocol error from a peer closes that socket (1002); it must not end the process.
        ws.on('error', (error) => this.errors.push(error));
      });
    });
    this.#server = new TrackedServer(server);
  }

  /** Start on 127.0.0.1 (any port); closed after the current test unless `autoClose` is false (benchmarks close it themselves). */
  static async start(options: { autoClose?: boolean } = {}): Promise<WsEchoUpstream> {
    const upstream = new WsEchoUpstream();
    upstream.#port = await upstream.#server.listen();
    if (options.autoClose ?? true) onCleanup(() => upstream.close());
    return upstream;
  }

  get origin(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Connections open right now. */
  get openConnections(): number {
    return this.#server.openConnections;
  }

  async close(): Promise<void> {
    for (const ws of this.#wss.clients) ws.terminate();
    this.#wss.close();
    await this.#server.close();
  }
}

/** A client WebSocket (`ws`), open; `ca` and `servername` for `wss:`. Terminated after the test unless `autoClose` is false. */
export async function openWebSocket(url: string, options: { ca?: Buffer; servername?: string; autoClose?: boolean } = {}): Promise<WebSocket> {
  // ws hands its options to https.request, which takes servername (the typings do not list it).
  const tlsOptions = { ca: options.ca, servername: options.servername } as WebSocket.ClientOptions;
  const ws = new WebSocket(url, { ...tlsOptions, headers: options.servername ? { host: options.servername } : {} });
  if (options.autoClose ?? true) onCleanup(() => ws.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
  });
  return ws;
}

/** Send `text` and resolve with the next message (the echo). */
export function echo(ws: WebSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data) => resolve(String(data)));
    ws.once('close', (code) => reject(new Error(`closed with ${code} while waiting for an echo`)));
    ws.send(text);
  });
}

/** Resolves with the close code once `ws` is closed. */
export function closed(ws: WebSocket): Promise<number> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve(-1);
  return new Promise((resolve) => ws.once('close', (code) => resolve(code)));
}
