import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatAddress, isLoopbackHost, parseListenAddress } from '../config/address.js';
import { AdminTokenRequiredError, UsageError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { Once } from '../core/once.js';
import { sendJson } from '../net/json.js';
import { createLimitedServer, type HttpLimits, httpLimits } from '../net/limits.js';
import type { ReloadResult } from '../reload/reloader.js';
import type { LeakReport } from './leaks.js';
import { BearerAuth } from './token.js';

/** The `/healthz` body: `ok` once a config is active; `starting` before, `stopping` during shutdown. */
export interface AdminHealth {
  status: 'ok' | 'starting' | 'stopping';
  /** The active generation (0 before the first). */
  generation: number;
  /** The daemon's process id (what `kill -HUP` needs; under `npm start` it is not npm's). */
  pid: number;
}

/** What the admin API serves; implemented by the daemon. */
export interface AdminBackend {
  health(): AdminHealth;
  /** The `/config` body, or undefined before the first config. */
  config(): unknown;
  reload(): Promise<ReloadResult>;
  /** The leak report (a cluster primary asks its workers, hence a promise). */
  leaks(): LeakReport | Promise<unknown>;
  renderMetrics(): Promise<{ contentType: string; body: string }>;
}

/** Status code of each reload outcome (`POST /reload`). */
const RELOAD_STATUS: Record<ReloadResult['result'], number> = { applied: 200, unchanged: 200, invalid: 422, failed: 500 };

/** Largest request body the admin API reads by default, in bytes (no endpoint needs one). */
const ADMIN_MAX_BODY_BYTES = 64 * 1024;

export interface AdminServerOptions {
  /**
   * Timeouts and size limits for admin clients; unset fields take `DEFAULT_HTTP_LIMITS`, except
   * the body limit: `ADMIN_MAX_BODY_BYTES` (64 KiB).
   */
  limits?: Partial<HttpLimits>;
}

/**
 * The admin HTTP API (node:http), loopback by default:
 * - `GET /healthz` → 200 `{status: "ok", generation, pid}` once a config is active, 503 before
 * - `GET /config` → `{generation, hash, loaded_at, source, config}` with secrets redacted
 * - `POST /reload` → 200 applied/unchanged, 422 invalid (`errors`), 500 failed (`error`)
 * - `GET /leaks` → the leak report
 * - `GET /metrics` → Prometheus text
 *
 * With a token (`start(listen, token)` or `setToken`), every request except `GET /healthz` and
 * `GET /metrics` needs `Authorization: Bearer <token>` (checked in constant time, see
 * `BearerAuth`); a missing or wrong token gets `401 {"error":"unauthorized"}` and nothing else.
 * A non-loopback address without a token is refused.
 */
export class AdminServer {
  readonly #backend: AdminBackend;
  readonly #log: Logger;
  readonly #limits: HttpLimits;
  #server: Server | undefined;
  readonly #closing = new Once(() => this.#close());
  #auth: BearerAuth | undefined;

  constructor(backend: AdminBackend, logger: Logger, options: AdminServerOptions = {}) {
    this.#backend = backend;
    this.#log = logger.child({ component: 'admin' });
    this.#limits = httpLimits({ maxBodyBytes: ADMIN_MAX_BODY_BYTES, ...options.limits });
  }

  /**
   * Bind `listen` (`HOST:PORT`), requiring `token` (see the class doc) when one is given.
   * @throws AdminTokenRequiredError when `listen` is not loopback and there is no token
   * @throws the bind error (`EADDRINUSE`)
   */
  async start(listen: string, token?: string): Promise<AddressInfo> {
    const parsed = parseListenAddress(listen);
    if ('error' in parsed) throw new UsageError(`admin address ${listen}: ${parsed.error}`);
    if (token === undefined && !isLoopbackHost(parsed.host)) throw new AdminTokenRequiredError(formatAddress(parsed.host, parsed.port));
    if (token !== undefined) this.setToken(token);
    const server = createLimitedServer(this.#limits, (req, res) => void this.#handle(req, res));
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

  /** Require `token` from now on (a token read after the server was bound). */
  setToken(token: string): void {
    this.#auth = new BearerAuth(token);
  }

  /** True when requests need a token. */
  get authenticated(): boolean {
    return this.#auth !== undefined;
  }

  get address(): AddressInfo | undefined {
    return this.#server?.address() as AddressInfo | undefined;
  }

  /**
   * Stop accepting and close every connection. Idempotent: every caller, concurrent or later,
   * returns once the server is closed.
   */
  close(): Promise<void> {
    return this.#closing.call();
  }

  async #close(): Promise<void> {
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
      const route = Object.hasOwn(ROUTES, path ?? '') ? ROUTES[path ?? ''] : undefined;
      if (this.#auth && !(route?.public && route.method === method) && !this.#auth.verify(req.headers.authorization)) {
        res.setHeader('www-authenticate', 'Bearer');
        return sendJson(res, 401, { error: 'unauthorized' }, false);
      }
      if (!route) return sendJson(res, 404, { error: 'not found' }, false);
      if (route.method !== method) {
        res.setHeader('allow', route.method);
        return sendJson(res, 405, { error: `use ${route.method}` }, false);
      }
      if (!(await drainBody(req, this.#limits.maxBodyBytes))) return sendJson(res, 413, { error: `body over ${this.#limits.maxBodyBytes} bytes` }, true);
      await route.handle(this.#backend, res);
    } catch (err) {
      this.#log.error({ err, url: req.url }, 'admin_request_failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' }, false);
      else res.destroy();
    }
  }
}

type Handler = (backend: AdminBackend, res: ServerResponse) => void | Promise<void>;

/** `public`: answered without a token (probes and scrapers carry none). */
const ROUTES: Record<string, { method: string; public?: true; handle: Handler }> = {
  '/healthz': {
    method: 'GET',
    public: true,
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
    async handle(backend, res) {
      sendJson(res, 200, await backend.leaks(), false);
    },
  },
  '/metrics': {
    method: 'GET',
    public: true,
    async handle(backend, res) {
      const { contentType, body } = await backend.renderMetrics();
      res.writeHead(200, { 'content-type': contentType });
      res.end(body);
    },
  },
};

/** Read and discard the request body; false when it exceeds `maxBytes`, declared or sent. */
async function drainBody(req: IncomingMessage, maxBytes: number): Promise<boolean> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBytes) return false;
  let total = 0;
  for await (const chunk of req) {
    total += (chunk as Buffer).byteLength;
    if (total > maxBytes) return false;
  }
  return true;
}
