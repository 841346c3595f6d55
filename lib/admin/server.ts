import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseListenAddress } from '../config/address.js';
import { sendJson } from '../http/handler.js';
import type { Logger } from '../log.js';
import type { ReloadResult } from '../reload/reloader.js';
import type { LeakReport } from './leaks.js';

/** What the admin API serves; implemented by the daemon. */
export interface AdminBackend {
  /** `ok` once a config is active; `starting` before, `stopping` during shutdown. */
  health(): { status: 'ok' | 'starting' | 'stopping'; generation: number };
  /** The `/config` body, or undefined before the first config. */
  config(): unknown;
  reload(): Promise<ReloadResult>;
  leaks(): LeakReport;
  renderMetrics(): Promise<{ contentType: string; body: string }>;
}

/** Status code of each reload outcome (`POST /reload`). */
const RELOAD_STATUS: Record<ReloadResult['result'], number> = { applied: 200, unchanged: 200, invalid: 422, failed: 500 };

/** Largest request body the admin API reads, in bytes (no endpoint needs one). */
const MAX_BODY_BYTES = 64 * 1024;

/**
 * The admin HTTP API (node:http), loopback by default:
 * - `GET /healthz` → 200 `{status: "ok", generation}` once a config is active, 503 before
 * - `GET /config` → `{generation, hash, loaded_at, source, config}` with secrets redacted
 * - `POST /reload` → 200 applied/unchanged, 422 invalid (`errors`), 500 failed (`error`)
 * - `GET /leaks` → the leak report
 * - `GET /metrics` → Prometheus text
 */
export class AdminServer {
  readonly #backend: AdminBackend;
  readonly #log: Logger;
  #server: Server | undefined;

  constructor(backend: AdminBackend, logger: Logger) {
    this.#backend = backend;
    this.#log = logger.child({ component: 'admin' });
  }

  /** Bind `listen` (`HOST:PORT`). Rejects with the bind error. */
  async start(listen: string): Promise<AddressInfo> {
    const parsed = parseListenAddress(listen);
    if ('error' in parsed) throw new Error(`admin address ${listen}: ${parsed.error}`);
    const server = createServer({ requestTimeout: 30_000 }, (req, res) => void this.#handle(req, res));
    server.headersTimeout = 10_000;
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: parsed.host, port: parsed.port, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.#log.error({ err }, 'admin_server_error'));
    this.#server = server;
    const address = server.address() as AddressInfo;
    this.#log.info({ address: address.address, port: address.port }, 'admin_listening');
    return address;
  }

  get address(): AddressInfo | undefined {
    return this.#server?.address() as AddressInfo | undefined;
  }

  /** Stop accepting and close every connection. Idempotent. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const path = (req.url ?? '/').split('?')[0];
      const method = req.method ?? 'GET';
      const route = ROUTES[path ?? ''];
      if (!route) return sendJson(res, 404, { error: 'not found' }, false);
      if (route.method !== method) {
        res.setHeader('allow', route.method);
        return sendJson(res, 405, { error: `use ${route.method}` }, false);
      }
      if (!(await drainBody(req))) return sendJson(res, 413, { error: `body over ${MAX_BODY_BYTES} bytes` }, true);
      await route.handle(this.#backend, res);
    } catch (err) {
      this.#log.error({ err, url: req.url }, 'admin_request_failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' }, false);
      else res.destroy();
    }
  }
}

type Handler = (backend: AdminBackend, res: ServerResponse) => void | Promise<void>;

const ROUTES: Record<string, { method: string; handle: Handler }> = {
  '/healthz': {
    method: 'GET',
    handle(backend, res) {
      const health = backend.health();
      sendJson(res, health.status === 'ok' ? 200 : 503, health, false);
    },
  },
  '/config': {
    method: 'GET',
    handle(backend, res) {
      const config = backend.config();
      if (config === undefined) sendJson(res, 503, { error: 'no config applied yet' }, false);
      else sendJson(res, 200, config, false);
    },
  },
  '/reload': {
    method: 'POST',
    async handle(backend, res) {
      const result = await backend.reload();
      sendJson(res, RELOAD_STATUS[result.result], result, false);
    },
  },
  '/leaks': {
    method: 'GET',
    handle(backend, res) {
      sendJson(res, 200, backend.leaks(), false);
    },
  },
  '/metrics': {
    method: 'GET',
    async handle(backend, res) {
      const { contentType, body } = await backend.renderMetrics();
      res.writeHead(200, { 'content-type': contentType });
      res.end(body);
    },
  },
};

/** Read and discard the request body; false when it exceeds MAX_BODY_BYTES. */
async function drainBody(req: IncomingMessage): Promise<boolean> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) return false;
  let total = 0;
  for await (const chunk of req) {
    total += (chunk as Buffer).byteLength;
    if (total > MAX_BODY_BYTES) return false;
  }
  return true;
}
