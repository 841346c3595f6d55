import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { sendJson } from './json.js';

/**
 * What every hotconf HTTP server (listeners and the admin API) allows a client, so a slow or
 * hostile client can hold neither a socket nor memory for long. Node's http server enforces the
 * timeouts (a late request head or body gets `408` and the connection is closed), the head size
 * (`431`) and malformed requests (`400`); `maxBodyBytes` is checked by `rejectOversizedBody`.
 */
export interface HttpLimits {
  /** Time allowed to receive a request's complete head (`server.headersTimeout`), in ms. */
  headersTimeoutMs: number;
  /** Time allowed to receive a complete request, body included (`server.requestTimeout`), in ms. */
  requestTimeoutMs: number;
  /** Idle keepalive connections are closed after this (`server.keepAliveTimeout`), in ms. */
  keepAliveTimeoutMs: number;
  /**
   * How often Node looks for requests past the two timeouts above (`connectionsCheckingInterval`,
   * Node's default 30000), in ms: a timeout takes effect up to this much late.
   */
  timeoutCheckIntervalMs: number;
  /** Largest request head, request line and headers together (`maxHeaderSize`), in bytes. */
  maxHeaderBytes: number;
  /**
   * Most header lines a request may have (Envoy's `max_headers_count`); more get `431` and the
   * connection is closed. Node's own `maxHeadersCount` would cut the rest silently (framing
   * headers included) and pass the request on, so it is set one higher and the count checked.
   */
  maxHeadersCount: number;
  /**
   * Largest request body a client may declare with `Content-Length`, in bytes; checked by
   * `rejectOversizedBody`, which listeners call before routing. The admin API sets its own,
   * smaller value (64 KiB by default) and also bounds the bytes it actually reads by it.
   */
  maxBodyBytes: number;
}

/**
 * The defaults, in one place. `maxBodyBytes` is 100 MiB, a common gateway ceiling: listeners
 * stream bodies to upstreams, so it bounds abuse, not memory.
 */
export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5000,
  timeoutCheckIntervalMs: 1000,
  maxHeaderBytes: 16 * 1024,
  maxHeadersCount: 100,
  maxBodyBytes: 100 * 1024 * 1024,
});

/** `DEFAULT_HTTP_LIMITS` with `overrides` applied. */
export function httpLimits(overrides: Partial<HttpLimits> = {}): HttpLimits {
  return { ...DEFAULT_HTTP_LIMITS, ...overrides };
}

/** A `node:http` server enforcing `limits` (not yet listening); a request over `maxHeadersCount` never reaches `onRequest`. */
export function createLimitedServer(limits: HttpLimits, onRequest: RequestListener): Server {
  const maxRawHeaders = limits.maxHeadersCount * 2;
  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: limits.timeoutCheckIntervalMs,
      maxHeaderSize: limits.maxHeaderBytes,
    },
    (req, res) => {
      // Node keeps at least maxHeadersCount lines of a longer head, so one more than the limit shows.
      if (req.rawHeaders.length > maxRawHeaders) sendJson(res, 431, { error: `more than ${limits.maxHeadersCount} request headers` }, true);
      else onRequest(req, res);
    },
  );
  server.maxHeadersCount = limits.maxHeadersCount + 1;
  return server;
}

/**
 * Answer `413` and close the connection when `req` declares a body over `maxBodyBytes`; returns
 * true when it did (the caller must not handle the request). A body sent without
 * `Content-Length` (chunked) is bounded by `requestTimeoutMs` and by whoever reads it.
 */
export function rejectOversizedBody(req: IncomingMessage, res: ServerResponse, maxBodyBytes: number): boolean {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (!(declared > maxBodyBytes)) return false;
  sendJson(res, 413, { error: `request body over ${maxBodyBytes} bytes` }, true);
  return true;
}
