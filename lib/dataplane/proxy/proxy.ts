import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { type Attributes, ROOT_CONTEXT, SpanKind, type TextMapSetter, type Tracer, trace } from '@opentelemetry/api';
import { ATTR_HTTP_REQUEST_RESEND_COUNT, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT, ATTR_URL_FULL } from '@opentelemetry/semantic-conventions';
import type { RouteConfig, UpstreamConfig } from '../../config/schema.js';
import { errorCode, errorMessage, HotconfError } from '../../core/errors.js';
import { type Logger, silentLogger } from '../../core/log.js';
import { sendFailure, sendJson } from '../../net/json.js';
import type { ConnectionSlots } from '../../resources/connection-slots.js';
import type { TargetHealth } from '../../resources/health.js';
import type { HealthObserver } from '../../resources/kind.js';
import type { UpstreamPool } from '../../resources/upstream.js';
import { HTTP_PROPAGATOR } from '../../telemetry/forwarding-tracer.js';
import { endHttpSpan, setRequestMethod, spanMethodName } from '../../telemetry/semconv.js';
import type { RequestContext, RouteAction } from '../ports.js';
import { normalizePath } from '../route/normalize.js';
import { Balancer } from './balancer.js';
import { BodyIdleTimeoutError, bufferRequestBody, hasBody, type RequestBody, StreamedBody, streamedBody } from './body.js';
import { downstreamResponseHeaders, upstreamPath, upstreamRequestHeaders } from './headers.js';
import { TRUST_NO_PEER, type TrustedProxies } from './trusted-proxies.js';

/** Receives one event per upstream attempt, for metrics; injected, never a module global. */
export interface ProxyObserver {
  /**
   * One attempt to `target` ended. `codeClass` is `2xx`..`5xx` from the upstream's status when
   * the response was relayed completely, `error` otherwise (connect error, timeout, reset, client
   * abort). `durationSeconds`: from sending the request to the last response byte (or the error).
   */
  upstreamRequest(upstream: string, target: string, codeClass: string, durationSeconds: number): void;
}

/** Everything the data plane reports: proxy attempts and health-check errors. */
export type UpstreamObserver = ProxyObserver & HealthObserver;

/** One target of an upstream in one generation: its pool and, with health checks, its shared state. */
export class ProxyTarget {
  readonly origin: string;
  /** `server.address` and `server.port` of the client spans to this target, derived once from `origin`. */
  readonly serverAddress: string;
  readonly serverPort: number;
  readonly pool: UpstreamPool;
  readonly #health: TargetHealth | undefined;

  constructor(pool: UpstreamPool, health: TargetHealth | undefined) {
    this.origin = pool.origin;
    const url = new URL(pool.origin);
    this.serverAddress = url.hostname.replace(/^\[|\]$/g, '');
    this.serverPort = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    this.pool = pool;
    this.#health = health;
  }

  /** Without a health check every target is healthy. */
  get healthy(): boolean {
    return this.#health?.healthy ?? true;
  }

  /** Requests holding or waiting for one of this target's connections, across generations. */
  get inflight(): number {
    return this.pool.slots.active + this.pool.slots.pending;
  }
}

export interface UpstreamOptions {
  name: string;
  config: UpstreamConfig;
  targets: readonly ProxyTarget[];
  /** The generation's tracer: client spans go to the same pipeline as its server spans. */
  tracer: Tracer;
  observer?: ProxyObserver;
  logger?: Logger;
  /** For `random` balancing. Default `Math.random`. */
  random?: () => number;
}

/**
 * An upstream as one generation serves it: its config, its targets (pools and health states
 * acquired by that generation) and a balancer. Built per generation and dropped with it; the
 * pools and states it points at are registry resources that outlive it when unchanged.
 */
export class Upstream {
  readonly name: string;
  readonly config: UpstreamConfig;
  readonly targets: readonly ProxyTarget[];
  readonly tracer: Tracer;
  readonly observer: ProxyObserver | undefined;
  readonly log: Logger;
  readonly balancer: Balancer<ProxyTarget>;

  constructor(options: UpstreamOptions) {
    this.name = options.name;
    this.config = options.config;
    this.targets = options.targets;
    this.tracer = options.tracer;
    this.observer = options.observer;
    this.log = (options.logger ?? silentLogger()).child({ component: 'proxy', upstream: options.name });
    this.balancer = new Balancer(options.config.load_balancing, options.targets, options.random);
  }
}

/**
 * A route that proxies to an upstream, compiled per generation and pointing at that
 * generation's `Upstream` (its balancer, pools and health states). `run` starts `proxyRequest`.
 */
export class ProxyAction implements RouteAction {
  readonly type = 'proxy';
  readonly upstream: Upstream;
  /** Normalised, as the router matches it (`normalizePath`). */
  readonly pathPrefix: string;
  readonly stripPrefix: boolean;
  /** The listener's `trusted_proxies`. */
  readonly trustedProxies: TrustedProxies;

  constructor(upstream: Upstream, pathPrefix: string, stripPrefix: boolean, trustedProxies: TrustedProxies = TRUST_NO_PEER) {
    this.upstream = upstream;
    this.pathPrefix = normalizePath(pathPrefix) ?? pathPrefix;
    this.stripPrefix = stripPrefix;
    this.trustedProxies = trustedProxies;
  }

  /** Read a body that fits `request_buffer_bytes` whole first (`bufferRequestBody`), then `proxyRequest`. */
  run(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void {
    const { config } = this.upstream;
    if (config.request_buffer_bytes > 0 && hasBody(req)) {
      bufferRequestBody(req, res, config.request_buffer_bytes, config.body_idle_timeout_ms, (body) => void proxyRequest(this, req, res, ctx, body));
    } else void proxyRequest(this, req, res, ctx);
  }
}

/**
 * Compile an `upstream` route of a listener whose `trusted_proxies` are `trustedProxies` against
 * the generation's upstreams.
 * @throws Error for an unknown name (the schema rejects those first)
 */
export function compileProxy(route: RouteConfig, upstreams: ReadonlyMap<string, Upstream>, trustedProxies: TrustedProxies = TRUST_NO_PEER): ProxyAction {
  const upstream = route.upstream === undefined ? undefined : upstreams.get(route.upstream);
  if (!upstream) throw new Error(`route ${route.path_prefix}: unknown upstream ${String(route.upstream)}`);
  return new ProxyAction(upstream, route.path_prefix, route.strip_prefix, trustedProxies);
}

/** The whole exchange took longer than the upstream's `timeout_ms`: 504. */
export class UpstreamTimeoutError extends HotconfError {
  constructor(upstream: string, timeoutMs: number) {
    super('E_UPSTREAM_TIMEOUT', `upstream ${upstream} did not answer within ${timeoutMs} ms`);
  }
}

/** The client went away before the response was relayed: the upstream request is aborted. */
export class ClientAbortedError extends HotconfError {
  constructor() {
    super('E_CLIENT_ABORTED', 'the client closed the connection');
  }
}

/** Errors from opening the connection: nothing was sent, so another target may be tried. */
const CONNECT_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
]);
const TIMEOUT_ERROR_CODES: ReadonlySet<string> = new Set(['E_UPSTREAM_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Why a request waiting for a busy target's connection was not admitted (503), or that it was. */
type SlotWait = 'admitted' | 'upstream queue full' | 'upstream queue timeout' | 'aborted';

/**
 * Wait for a slot of `slots` (all of the target's connections are busy): at most
 * `max_pending_requests` wait, each at most `queue_timeout_ms`, as Envoy's circuit breakers fail
 * pending requests fast. Resolves 'aborted' when `signal` aborts first (the client left, or
 * `timeout_ms`). Only a request that has to wait allocates this.
 */
function waitForSlot(slots: ConnectionSlots, streaming: boolean, config: UpstreamConfig, signal: AbortSignal): Promise<SlotWait> {
  return new Promise((resolve) => {
    const settle = (outcome: SlotWait) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (outcome !== 'admitted') slots.cancel(waiter);
      resolve(outcome);
    };
    const waiter = { streaming, admit: () => settle('admitted') };
    const onAbort = () => settle('aborted');
    if (!slots.enqueue(waiter, config.max_pending_requests)) {
      resolve('upstream queue full');
      return;
    }
    const timer = setTimeout(() => settle('upstream queue timeout'), config.queue_timeout_ms).unref();
    signal.addEventListener('abort', onAbort);
  });
}

function isConnectError(error: unknown): boolean {
  const code = errorCode(error);
  return code !== undefined && (CONNECT_ERROR_CODES.has(code) || (error as { syscall?: string }).syscall === 'connect');
}

function codeClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}

interface AttemptOutcome {
  /** The response was relayed (or started to be): no further attempt, whatever happened after. */
  answered: boolean;
  error?: unknown;
}

/**
 * Proxy one request to `action.upstream`, as the generation that compiled `action` sees it
 * (its routes, balancer and pools), and never reject.
 *
 * - Sends `ctx.target`, the path and query the handler normalised and routed by (`upstreamPath`);
 *   400 when the context has none.
 * - Sends `body` (what `ProxyAction.run` buffered: whole, or the start of a streamed body); a
 *   request with a body and no `body` streams it all. A client that sends nothing of a streamed
 *   body for `body_idle_timeout_ms` gets 408. The response streams with backpressure, read ahead
 *   of the client up to `response_buffer_bytes` (undici's `highWaterMark`), so a response that
 *   fits frees its connection whatever the client does; a client that reads nothing of it for
 *   `body_idle_timeout_ms` is cut (nginx's `send_timeout`), which frees the connection too.
 * - Each attempt first takes a slot of its target's connections (`ConnectionSlots`; a streaming
 *   body only within the half of them streaming bodies may hold): when none is free it waits,
 *   and gets 503 when `max_pending_requests` already wait or after `queue_timeout_ms` (fail fast
 *   rather than queue behind slow clients until `timeout_ms`).
 * - Each attempt goes to a healthy target the request has not tried yet, with a CLIENT span
 *   (OTel HTTP client semantic conventions) parented on the request's server span and its
 *   `traceparent` sent upstream.
 * - A connect error is retried on another target, up to `retries` times, while the client's body
 *   is buffered or unread; any other failure is final.
 * - No healthy target: 503 at once. Connect error with no target left: 502. `timeout_ms` (for the
 *   whole exchange, retries included) or undici's headers/body timeout: 504. Once response
 *   headers were relayed, a failure can only cut the client connection.
 * - The client closing its connection (including the drain-timeout abort of the request's
 *   generation, which destroys the socket) aborts the upstream request.
 */
export async function proxyRequest(action: ProxyAction, req: IncomingMessage, res: ServerResponse, ctx: RequestContext, body?: RequestBody): Promise<void> {
  const { upstream } = action;
  const { config } = upstream;
  const { target } = ctx;
  if (!target) {
    sendJson(res, 400, { error: 'bad request target' }, false);
    return;
  }
  // The client left while its body was buffered: nothing to send, and no 'close' left to wait for.
  if (res.destroyed) return;
  const abort = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) abort.abort(new ClientAbortedError());
  };
  res.once('close', onClose);
  // Cleared in the finally below; unref'd because the sockets, not this timer, keep the request alive.
  const timer = setTimeout(() => abort.abort(new UpstreamTimeoutError(upstream.name, config.timeout_ms)), config.timeout_ms).unref();
  const path = upstreamPath(target, action);
  const peer = req.socket.remoteAddress;
  const proto = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
  const headers = upstreamRequestHeaders(req, peer, config.forwarded_header, action.trustedProxies.trusts(peer), target.authority, proto);
  const sent: RequestBody = body ?? (hasBody(req) ? new StreamedBody([]) : undefined);
  const streaming = sent instanceof StreamedBody;
  const tried = new Set<ProxyTarget>();
  try {
    for (let attempt = 0; ; attempt += 1) {
      const chosen = upstream.balancer.pick(tried);
      if (!chosen) {
        if (attempt === 0) sendJson(res, 503, { error: 'no healthy upstream target', upstream: upstream.name }, false);
        else sendJson(res, 502, { error: 'upstream connect error', upstream: upstream.name }, false);
        return;
      }
      tried.add(chosen);
      const { slots } = chosen.pool;
      if (!slots.tryAcquire(streaming)) {
        const waited = await waitForSlot(slots, streaming, config, abort.signal);
        if (waited !== 'admitted') {
          if (waited !== 'aborted') sendJson(res, 503, { error: waited, upstream: upstream.name }, false);
          else if (abort.signal.reason instanceof UpstreamTimeoutError) sendFailure(res, 504, { error: 'upstream timeout', upstream: upstream.name });
          return;
        }
      }
      let outcome: AttemptOutcome;
      try {
        outcome = await attemptOnce({ action, req, res, ctx, chosen, attempt, path, headers, body: sent, abort });
      } finally {
        slots.release(streaming);
      }
      if (outcome.error === undefined) return;
      const error = abort.signal.aborted ? abort.signal.reason : outcome.error;
      if (error instanceof ClientAbortedError) return;
      const unsent = !streaming || !(sent as StreamedBody).started;
      if (!outcome.answered && isConnectError(error) && unsent && attempt < config.retries) continue;
      if (error instanceof BodyIdleTimeoutError) {
        if (res.headersSent) res.destroy();
        else sendJson(res, 408, { error: error.message }, true);
      } else if (TIMEOUT_ERROR_CODES.has(errorCode(error) ?? '')) sendFailure(res, 504, { error: 'upstream timeout', upstream: upstream.name });
      else if (isConnectError(error)) sendFailure(res, 502, { error: 'upstream connect error', upstream: upstream.name });
      else sendFailure(res, 502, { error: 'upstream error', upstream: upstream.name });
      return;
    }
  } catch (error) {
    upstream.log.error({ err: error, generation: ctx.generation }, 'proxy_failed');
    sendFailure(res, 500, { error: 'internal error' });
  } finally {
    clearTimeout(timer);
    res.off('close', onClose);
  }
}

/** Trace-context headers are appended to the flat `[name, value, ...]` list sent upstream. */
const HEADER_LIST_SETTER: TextMapSetter<string[]> = { set: (carrier, key, value) => void carrier.push(key, value) };

interface Attempt {
  action: ProxyAction;
  req: IncomingMessage;
  res: ServerResponse;
  ctx: RequestContext;
  chosen: ProxyTarget;
  attempt: number;
  path: string;
  headers: readonly string[];
  body: RequestBody;
  /** The request's: aborted when the client leaves, at `timeout_ms`, or when the client stalls a streamed body. */
  abort: AbortController;
}

const CLIENT_SPAN = { kind: SpanKind.CLIENT };

async function attemptOnce(a: Attempt): Promise<AttemptOutcome> {
  const { upstream } = a.action;
  const method = a.req.method ?? 'GET';
  const span = upstream.tracer.startSpan(spanMethodName(method), CLIENT_SPAN, trace.setSpan(ROOT_CONTEXT, a.ctx.span));
  // Attributes are built for recorded spans only (unsampled ones and tracing off skip them).
  if (span.isRecording()) {
    const attributes = clientAttributes(a.chosen, a.path, a.attempt);
    setRequestMethod(attributes, method);
    span.setAttributes(attributes);
  }
  const headers = [...a.headers];
  HTTP_PROPAGATOR.inject(trace.setSpan(ROOT_CONTEXT, span), headers, HEADER_LIST_SETTER);
  const pool = a.chosen.pool;
  const { config } = upstream;
  const started = process.hrtime.bigint();
  let status: number | undefined;
  let answered = false;
  let responseBody: Readable | undefined;
  try {
    const response = await pool.pool.request({
      path: a.path,
      method,
      headers,
      body: requestBodyFor(a),
      signal: a.abort.signal,
      headersTimeout: config.timeout_ms,
      bodyTimeout: config.timeout_ms,
      highWaterMark: config.response_buffer_bytes,
    });
    status = response.statusCode;
    responseBody = response.body;
    answered = true;
    a.res.writeHead(status, downstreamResponseHeaders(response.headers));
    await relay(response.body, a.res, config.body_idle_timeout_ms);
    endHttpSpan(span, status, undefined, 400);
    upstream.observer?.upstreamRequest(upstream.name, a.chosen.origin, codeClass(status), seconds(started));
    return { answered };
  } catch (error) {
    // A body left unread would hold its pooled connection forever (relay fails without
    // destroying it, and writeHead can throw before relay starts).
    responseBody?.destroy();
    const reason = a.abort.signal.aborted ? a.abort.signal.reason : error;
    endHttpSpan(span, status, { type: errorCode(reason) ?? (reason instanceof Error ? reason.name : 'error'), message: errorMessage(reason) }, 400);
    upstream.observer?.upstreamRequest(upstream.name, a.chosen.origin, 'error', seconds(started));
    // A client that left or stalled is not an upstream failure worth a log line.
    const clientFault = reason instanceof ClientAbortedError || reason instanceof BodyIdleTimeoutError;
    const logged = clientFault ? undefined : pool.attemptErrors.checkError(upstream.name, reason);
    if (logged) upstream.log.warn({ target: a.chosen.origin, attempt: a.attempt, ...logged, generation: a.ctx.generation }, 'upstream_attempt_failed');
    return { answered, error: reason };
  }
}

/** What undici sends as the body of attempt `a`: the buffered bytes again, or the stream (once). */
function requestBodyFor(a: Attempt): Buffer | Readable | null {
  const { body } = a;
  if (body === undefined || Buffer.isBuffer(body)) return body ?? null;
  const idleMs = a.action.upstream.config.body_idle_timeout_ms;
  const iterable = streamedBody(a.req, body, idleMs, () => a.abort.abort(new BodyIdleTimeoutError(idleMs, 'request')));
  // undici sends async iterables (its runtime check says so); its typings list streams only.
  return iterable as unknown as Readable;
}

/**
 * Stream the upstream body to the client; resolves when the client response finished, rejects
 * on an upstream body error, a client that went away first, or a client that read nothing for
 * `idleMs` while data waited for it (`BodyIdleTimeoutError`; the client is cut). A plain `pipe`
 * instead of `stream.pipeline`: pipeline creates and aborts an AbortController per call (a
 * DOMException with a stack trace each time), which was ~8% of the proxy's CPU under load.
 * Stalls are seen through `pipe`'s own signals (the body pauses when the client's buffer is
 * full; the response drains when it emptied), so a client that keeps up costs no timer.
 */
function relay(body: Readable, res: ServerResponse, idleMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let stalled = false;
    let idle: NodeJS.Timeout | undefined;
    const fail = (error: unknown) => {
      clearTimeout(idle);
      body.unpipe(res);
      reject(error);
    };
    body.once('error', fail);
    res.once('error', fail);
    res.once('finish', () => {
      clearTimeout(idle);
      resolve();
    });
    res.once('close', () => {
      if (!res.writableFinished) fail(new ClientAbortedError());
    });
    body.on('pause', () => {
      if (stalled) return;
      stalled = true;
      // One timer per response, re-armed at each stall: it fires idleMs after the stall began.
      if (idle) idle.refresh();
      else
        idle = setTimeout(() => {
          if (!stalled) return;
          fail(new BodyIdleTimeoutError(idleMs, 'response'));
          res.destroy();
        }, idleMs).unref();
    });
    res.on('drain', () => {
      stalled = false;
    });
    body.pipe(res);
  });
}

/**
 * A client span's attributes but for the method (`setRequestMethod`). `url.full` is the origin
 * followed by the path as sent: resolving the path against the origin would read a path starting
 * with `//` as another host.
 */
function clientAttributes(target: ProxyTarget, path: string, attempt: number): Attributes {
  const attributes: Attributes = {
    [ATTR_SERVER_ADDRESS]: target.serverAddress,
    [ATTR_SERVER_PORT]: target.serverPort,
    [ATTR_URL_FULL]: target.origin + path,
  };
  if (attempt > 0) attributes[ATTR_HTTP_REQUEST_RESEND_COUNT] = attempt;
  return attributes;
}

function seconds(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}
