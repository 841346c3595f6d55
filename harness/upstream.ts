import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { onCleanup } from './cleanup.js';
import { TrackedServer } from './tracked-server.js';

/** A data request an upstream received (health probes are counted apart). */
export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  /** Local port of the proxy's connection: equal ports mean one pooled connection. */
  remotePort: number | undefined;
  /** Set when the connection closed before the response finished (the proxy aborted it). */
  aborted: boolean;
  /** Set once the response finished. */
  finished: boolean;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, received: ReceivedRequest) => void;

/** Reads the whole body, answers 200 JSON: method, url, headers, body size and SHA-256. */
export const echoJson: UpstreamHandler = (req, res) => {
  const hash = createHash('sha256');
  let bytes = 0;
  req.on('data', (chunk: Buffer) => {
    bytes += chunk.byteLength;
    hash.update(chunk);
  });
  req.on('end', () => {
    const body = Buffer.from(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body_bytes: bytes, body_sha256: hash.digest('hex') }));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.byteLength), 'x-upstream': 'echo' });
    res.end(body);
  });
};

/** Streams the request body straight back as it arrives (chunked): proves streaming both ways. */
export const streamEcho: UpstreamHandler = (req, res) => {
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  res.flushHeaders();
  req.pipe(res);
};

/** Never answers: for timeouts, client aborts and drains. */
export const hang: UpstreamHandler = () => {};

/** A handler that reads each request and holds its response until the spec ends it (`held`). */
export function holding(): { handler: UpstreamHandler; held: ServerResponse[] } {
  const held: ServerResponse[] = [];
  return {
    held,
    handler: (req, res) => {
      req.resume();
      held.push(res);
    },
  };
}

/**
 * A real HTTP upstream on 127.0.0.1 for proxy specs. `GET /healthz` answers `healthStatus`
 * (counted in `healthChecks`, not recorded); every other request is recorded in `requests` and
 * handed to `handler` (default `echoJson`). Both can be changed while it runs. Closed after the
 * test (every connection destroyed).
 */
export class TestUpstream {
  readonly requests: ReceivedRequest[] = [];
  healthChecks = 0;
  /** Client ports of the connections health probes came on: one checker keeps one connection per target. */
  readonly healthCheckPorts = new Set<number>();
  healthStatus = 200;
  handler: UpstreamHandler;
  readonly #server: TrackedServer;
  #port = 0;

  private constructor(handler: UpstreamHandler) {
    this.handler = handler;
    const server = createServer((req, res) => {
      if (req.url === '/healthz') {
        this.healthChecks += 1;
        if (req.socket.remotePort !== undefined) this.healthCheckPorts.add(req.socket.remotePort);
        req.resume();
        res.writeHead(this.healthStatus, { 'content-length': '0' });
        res.end();
        return;
      }
      const received: ReceivedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        remotePort: req.socket.remotePort,
        aborted: false,
        finished: false,
      };
      this.requests.push(received);
      res.once('finish', () => (received.finished = true));
      res.once('close', () => (received.aborted = !received.finished));
      this.handler(req, res, received);
    });
    this.#server = new TrackedServer(server);
  }

  /** Start on 127.0.0.1 (`port` 0: any); closed after the test. */
  static async start(options: { handler?: UpstreamHandler; port?: number } = {}): Promise<TestUpstream> {
    const upstream = new TestUpstream(options.handler ?? echoJson);
    upstream.#port = await upstream.#server.listen(options.port);
    onCleanup(() => upstream.close());
    return upstream;
  }

  get port(): number {
    return this.#port;
  }

  /** `http://127.0.0.1:PORT`: what a config lists as a target. */
  get origin(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** TCP connections ever accepted. */
  get connectionsOpened(): number {
    return this.#server.connectionsOpened;
  }

  /** Connections open right now. */
  get openConnections(): number {
    return this.#server.openConnections;
  }

  /** Stop listening and destroy every connection. Idempotent. */
  close(): Promise<void> {
    return this.#server.close();
  }
}

/**
 * A config with one listener on `port` whose only route (unless `routes` is given) proxies every
 * path to the first of `upstreams`; `listener` adds settings to the listener (`trusted_proxies`).
 */
export function proxyConfig(options: {
  port: number;
  upstreams: Record<string, Record<string, unknown>>;
  routes?: Record<string, unknown>[];
  listener?: Record<string, unknown>;
  extra?: Record<string, unknown>;
}): Record<string, unknown> {
  const first = Object.keys(options.upstreams)[0];
  return {
    shutdown_timeout_ms: 2000,
    upstreams: options.upstreams,
    listeners: [{ name: 'web', listen: `127.0.0.1:${options.port}`, routes: options.routes ?? [{ path_prefix: '/', upstream: first }], ...options.listener }],
    ...options.extra,
  };
}
