import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { type Attributes, isSpanContextValid, ROOT_CONTEXT, type Span, SpanKind, type TextMapSetter, trace } from '@opentelemetry/api';
import { ATTR_HTTP_REQUEST_RESEND_COUNT, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT, ATTR_URL_FULL } from '@opentelemetry/semantic-conventions';
import type { Dispatcher } from 'undici';
import type { UpstreamConfig } from '../../config/schema.js';
import { errorCode, errorMessage, HotconfError } from '../../core/errors.js';
import { sendFailure, sendJson } from '../../net/json.js';
import type { QueuedRequest } from '../../resources/connection-slots.js';
import { lostReusedConnection } from '../../resources/upstream-connector.js';
import { HTTP_PROPAGATOR } from '../../telemetry/forwarding-tracer.js';
import { endHttpSpan, setRequestMethod, spanMethodName } from '../../telemetry/semconv.js';
import type { RequestContext, RequestOutcome } from '../ports.js';
import { BodyIdleTimeoutError, hasBody, type RequestBody, StreamedBody, streamedBody } from './body.js';
import type { Deadlined } from './deadline.js';
import { downstreamResponseHeaders, upstreamPath, upstreamRequestHeaders } from './headers.js';
import type { ProxyTarget, RetryReason, Upstream } from './target.js';
import type { TrustedProxies } from './trusted-proxies.js';

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

/** What the proxy reads of the route it serves (`ProxyAction`). */
export interface ProxyRoute {
  readonly upstream: Upstream;
  /** Normalised, as the router matches it. */
  readonly pathPrefix: string;
  readonly stripPrefix: boolean;
  /** The listener's `trusted_proxies`. */
  readonly trustedProxies: TrustedProxies;
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
/** Methods that may be sent twice (RFC 9110 section 9.2.2; TRACE is refused before it gets here unless a route allows it). */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

function isConnectError(error: unknown): boolean {
  const code = errorCode(error);
  return code !== undefined && (CONNECT_ERROR_CODES.has(code) || (error as { syscall?: string }).syscall === 'connect');
}

/** `2xx`..`5xx`, from a table: no string built per response. */
const CODE_CLASSES = ['1xx', '1xx', '2xx', '3xx', '4xx', '5xx'];
function codeClass(status: number): string {
  return CODE_CLASSES[Math.floor(status / 100)] ?? `${Math.floor(status / 100)}xx`;
}

/** Trace-context headers are appended to the flat `[name, value, ...]` list sent upstream. */
const HEADER_LIST_SETTER: TextMapSetter<string[]> = { set: (carrier, key, value) => void carrier.push(key, value) };
const CLIENT_SPAN = { kind: SpanKind.CLIENT };

/**
 * Proxy one request to `route.upstream`, as the generation that compiled `route` sees it (its
 * balancer and pools), and never throw for a request it could answer. Callback-based: one
 * exchange object per request and one undici dispatch handler per attempt; no promise, no
 * AbortController, no timer per request (deadlines are swept per upstream, `DeadlineList`).
 *
 * - Sends `ctx.target`, the path and query the handler normalised and routed by (`upstreamPath`);
 *   400 when the context has none.
 * - Sends `body` (what `ProxyAction.run` buffered: whole, or the start of a streamed body); a
 *   request with a body and no `body` streams it all, with backpressure. A client that sends
 *   nothing of a streamed body for `body_idle_timeout_ms` gets 408. The response streams with
 *   backpressure: read ahead of the client up to `response_buffer_bytes`, so a response that
 *   fits frees its connection whatever the client does; a client that reads nothing of it for
 *   `body_idle_timeout_ms` is cut (nginx's `send_timeout`), which frees the connection too.
 * - Each attempt first takes a slot of its target's connections (`ConnectionSlots`; a streaming
 *   body only within the half of them streaming bodies may hold): when none is free it waits,
 *   and gets 503 when `max_pending_requests` already wait or after `queue_timeout_ms`.
 * - Each attempt goes to a healthy target the request has not tried yet. When the request's
 *   server span is recorded, the attempt gets a CLIENT span (OTel HTTP client semantic
 *   conventions) parented on it, whose `traceparent` is sent; otherwise the server span's trace
 *   context (when it has a valid one: an incoming `traceparent`, or an unsampled trace) passes
 *   upstream as it is, and no client span or attribute is built.
 * - Retries, each within `retries` (extra attempts in all): a connect error is retried on
 *   another target while the body can be sent again (buffered, or streamed but unread); a
 *   kept-alive connection closed or reset before any byte of the response (the upstream closed
 *   it as idle while the request went out) is retried once, on the same target, when the
 *   method is idempotent (GET, HEAD, OPTIONS, PUT, DELETE) or no body byte was sent, and the
 *   body can be sent again. Any other failure is final.
 * - No healthy target: 503 at once. Connect error with no retry left: 502. `timeout_ms` (for
 *   the whole exchange: queueing and retries included) or undici's headers/body timeout: 504.
 *   Once response headers were relayed, a failure can only cut the client connection.
 * - The client closing its connection (including the drain-timeout abort of the request's
 *   generation, which destroys the socket) aborts the upstream request.
 *
 * Fills `ctx.outcome`: `upstream`, `target` and `attempts` of the last attempt, and `ended`:
 * `client_aborted` (the client left, or stalled its body or its reading past
 * `body_idle_timeout_ms`), `timeout` (`timeout_ms`, `queue_timeout_ms`, undici's timeouts),
 * `upstream_error` (no healthy target, queue full, connect error, reset, bad response).
 */
export function proxyRequest(route: ProxyRoute, req: IncomingMessage, res: ServerResponse, ctx: RequestContext, body?: RequestBody): void {
  if (!ctx.target) {
    sendJson(res, 400, { error: 'bad request target' }, false);
    return;
  }
  // The client left while its body was buffered: nothing to send, and no 'close' left to wait for.
  if (res.destroyed) {
    ctx.outcome.ended = 'client_aborted';
    return;
  }
  new ProxyExchange(route, req, res, ctx, body).start();
}

/** One proxied request, from its arrival to its last attempt's end. */
class ProxyExchange implements Deadlined {
  deadlineAt = 0;
  prevDeadline: Deadlined | undefined = undefined;
  nextDeadline: Deadlined | undefined = undefined;
  readonly route: ProxyRoute;
  readonly upstream: Upstream;
  readonly config: UpstreamConfig;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly ctx: RequestContext;
  readonly outcome: RequestOutcome;
  readonly method: string;
  readonly path: string;
  /** Sent with every attempt, before the trace context. */
  readonly headers: string[];
  readonly body: RequestBody;
  readonly streaming: boolean;
  /** Targets tried by earlier attempts: the first one alone, a set only from a second one on. */
  #tried: ProxyTarget | Set<ProxyTarget> | undefined;
  #attempt: Attempt | undefined;
  #waiting: SlotWait | undefined;
  #resetRetried = false;
  #ended = false;

  constructor(route: ProxyRoute, req: IncomingMessage, res: ServerResponse, ctx: RequestContext, body: RequestBody) {
    this.route = route;
    this.upstream = route.upstream;
    this.config = route.upstream.config;
    this.req = req;
    this.res = res;
    this.ctx = ctx;
    this.outcome = ctx.outcome;
    this.method = req.method ?? 'GET';
    this.path = upstreamPath(ctx.target!, route);
    const peer = req.socket.remoteAddress;
    const proto = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
    this.headers = upstreamRequestHeaders(req, peer, this.config.forwarded_header, route.trustedProxies.trusts(peer), ctx.target!.authority, proto);
    this.body = body ?? (hasBody(req) ? new StreamedBody([]) : undefined);
    this.streaming = this.body instanceof StreamedBody;
  }

  start(): void {
    this.outcome.upstream = this.upstream.name;
    this.upstream.deadlines.add(this);
    this.res.on('close', () => this.#clientClosed());
    this.#next(undefined);
  }

  /** The request's `timeout_ms` passed (`DeadlineList`). */
  expire(): void {
    if (this.#ended) return;
    const error = new UpstreamTimeoutError(this.upstream.name, this.config.timeout_ms);
    if (this.#attempt) this.#attempt.cancel(error);
    else if (this.#waiting) this.#waiting.cancel(error);
  }

  #clientClosed(): void {
    if (this.res.writableFinished) return;
    if (this.#ended) {
      // The upstream's response was all handed to the client's connection, which closed before it went out.
      this.outcome.ended ??= 'client_aborted';
      return;
    }
    const error = new ClientAbortedError();
    if (this.#attempt) this.#attempt.cancel(error);
    else if (this.#waiting) this.#waiting.cancel(error);
    else this.#end('client_aborted');
  }

  /**
   * Start the next attempt: to a target not tried yet, or to `same` (a reused connection's
   * retry). `retry` is why, for a retry (counted once a target is chosen).
   */
  #next(same: ProxyTarget | undefined, retry?: RetryReason): void {
    const tried = this.#tried;
    const chosen = same ?? this.upstream.balancer.pick(tried === undefined ? undefined : tried instanceof Set ? tried : new Set([tried]));
    if (!chosen) {
      if (this.outcome.attempts === 0) sendJson(this.res, 503, { error: 'no healthy upstream target', upstream: this.upstream.name }, false);
      else sendJson(this.res, 502, { error: 'upstream connect error', upstream: this.upstream.name }, false);
      this.#end('upstream_error');
      return;
    }
    if (retry) this.upstream.observer?.upstreamRetry(this.upstream.name, retry);
    if (tried === undefined) this.#tried = chosen;
    else if (tried instanceof Set) tried.add(chosen);
    else if (tried !== chosen) this.#tried = new Set([tried, chosen]);
    if (chosen.pool.slots.tryAcquire(this.streaming)) this.#send(chosen);
    else this.#waitForSlot(chosen);
  }

  /**
   * Wait for a slot of `chosen`'s connections: at most `max_pending_requests` wait, each at most
   * `queue_timeout_ms`, as Envoy's circuit breakers fail pending requests fast. Only a request
   * that has to wait allocates this (and its timer).
   */
  #waitForSlot(chosen: ProxyTarget): void {
    const wait = new SlotWait(this, chosen);
    if (!chosen.pool.slots.enqueue(wait, this.config.max_pending_requests)) {
      sendJson(this.res, 503, { error: 'upstream queue full', upstream: this.upstream.name }, false);
      this.#end('upstream_error');
      return;
    }
    this.#waiting = wait;
    wait.arm(this.config.queue_timeout_ms);
  }

  /** `SlotWait` ended: admitted (`error` undefined), or cancelled. */
  waited(wait: SlotWait, error: Error | undefined): void {
    this.#waiting = undefined;
    if (error === undefined) {
      this.#send(wait.target);
      return;
    }
    if (error instanceof ClientAbortedError) this.#end('client_aborted');
    else if (error instanceof UpstreamTimeoutError) {
      sendFailure(this.res, 504, { error: 'upstream timeout', upstream: this.upstream.name });
      this.#end('timeout');
    } else {
      sendJson(this.res, 503, { error: error.message, upstream: this.upstream.name }, false);
      this.#end(error instanceof QueueTimeoutError ? 'timeout' : 'upstream_error');
    }
  }

  #send(chosen: ProxyTarget): void {
    const index = this.outcome.attempts;
    this.outcome.attempts = index + 1;
    this.outcome.target = chosen.authority;
    const attempt = new Attempt(this, chosen, index);
    this.#attempt = attempt;
    attempt.send();
  }

  /** The response was relayed whole. */
  succeeded(): void {
    this.#attempt = undefined;
    this.#end(undefined);
  }

  /** `attempt` failed with `error` (the reason it was cancelled for, if it was). */
  failed(attempt: Attempt, error: unknown): void {
    this.#attempt = undefined;
    if (error instanceof ClientAbortedError || this.res.destroyed) {
      this.#end('client_aborted');
      return;
    }
    if (!attempt.answered && this.outcome.attempts <= this.config.retries && this.#resendable()) {
      if (isConnectError(error)) {
        this.#next(undefined, 'connect_error');
        return;
      }
      if (!this.#resetRetried && lostReusedConnection(error) && (IDEMPOTENT_METHODS.has(this.method) || !attempt.bodySent)) {
        this.#resetRetried = true;
        this.#next(attempt.target, 'reused_connection_closed');
        return;
      }
    }
    const name = this.upstream.name;
    if (error instanceof BodyIdleTimeoutError) {
      if (this.res.headersSent) this.res.destroy();
      else sendJson(this.res, 408, { error: error.message }, true);
      this.#end('client_aborted');
    } else if (TIMEOUT_ERROR_CODES.has(errorCode(error) ?? '')) {
      sendFailure(this.res, 504, { error: 'upstream timeout', upstream: name });
      this.#end('timeout');
    } else {
      sendFailure(this.res, 502, { error: isConnectError(error) ? 'upstream connect error' : 'upstream error', upstream: name });
      this.#end('upstream_error');
    }
  }

  /** The body can go again: none, buffered, or streamed but not read yet. */
  #resendable(): boolean {
    return !this.streaming || !(this.body as StreamedBody).started;
  }

  #end(ended: RequestOutcome['ended']): void {
    if (this.#ended) return;
    this.#ended = true;
    if (ended !== undefined) this.outcome.ended = ended;
    this.upstream.deadlines.remove(this);
  }
}

/** `queue_timeout_ms` passed while waiting for a connection: 503. */
class QueueTimeoutError extends Error {
  constructor() {
    super('upstream queue timeout');
  }
}

/** A request waiting in a target's `ConnectionSlots` queue. */
class SlotWait implements QueuedRequest {
  readonly streaming: boolean;
  readonly target: ProxyTarget;
  readonly #exchange: ProxyExchange;
  #timer: NodeJS.Timeout | undefined;

  constructor(exchange: ProxyExchange, target: ProxyTarget) {
    this.#exchange = exchange;
    this.target = target;
    this.streaming = exchange.streaming;
  }

  arm(timeoutMs: number): void {
    // Unref'd: the client's socket, not this timer, keeps the request alive.
    this.#timer = setTimeout(() => this.cancel(new QueueTimeoutError()), timeoutMs).unref();
  }

  admit(): void {
    clearTimeout(this.#timer);
    this.#exchange.waited(this, undefined);
  }

  cancel(error: Error): void {
    clearTimeout(this.#timer);
    this.target.pool.slots.cancel(this);
    this.#exchange.waited(this, error);
  }
}

/**
 * One attempt: an undici `dispatch` with this object as its handler (undici's callback API,
 * raw header buffers, no body stream or promise in between). The response is relayed to the
 * client as it comes: head (`writeHead` with a flat header list), body chunks written with
 * backpressure (undici is paused when the client's buffer holds `response_buffer_bytes`, and
 * resumed on its `drain`), end. It holds the target's connection slot until undici is done with
 * the connection (response complete, or the error).
 */
class Attempt implements Dispatcher.DispatchHandler {
  readonly exchange: ProxyExchange;
  readonly target: ProxyTarget;
  readonly index: number;
  /** A response head was relayed: the request is answered, whatever happens next. */
  answered = false;
  /** undici sent some of the request body. */
  bodySent = false;
  #status = 0;
  #span: Span | undefined;
  #startedAt = 0;
  #abort: ((error?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  /** Why hotconf ended the attempt (client gone, deadline, idle client), before undici reports it. */
  #cancelled: Error | undefined;
  /** Set when the exchange was answered before undici took the request (cancelled while connecting). */
  #detached = false;
  #done = false;
  #paused = false;
  #onDrain: (() => void) | undefined;
  #idle: NodeJS.Timeout | undefined;

  constructor(exchange: ProxyExchange, target: ProxyTarget, index: number) {
    this.exchange = exchange;
    this.target = target;
    this.index = index;
  }

  send(): void {
    const { exchange, target } = this;
    const { upstream, config } = exchange;
    const serverSpan = exchange.ctx.span;
    let headers = exchange.headers;
    if (serverSpan.isRecording()) {
      const span = upstream.tracer.startSpan(spanMethodName(exchange.method), CLIENT_SPAN, trace.setSpan(ROOT_CONTEXT, serverSpan));
      // Attributes are built for recorded spans only.
      if (span.isRecording()) span.setAttributes(clientAttributes(target, exchange.path, this.index, exchange.method));
      this.#span = span;
      headers = withTraceContext(headers, span);
    } else if (isSpanContextValid(serverSpan.spanContext())) headers = withTraceContext(headers, serverSpan);
    this.#startedAt = performance.now();
    target.pool.pool.dispatch(
      {
        path: exchange.path,
        method: exchange.method,
        headers,
        body: this.#requestBody(),
        headersTimeout: config.timeout_ms,
        bodyTimeout: config.timeout_ms,
      },
      this,
    );
  }

  /** What undici sends: the buffered bytes (again), or the streamed body (once). */
  #requestBody(): Buffer | Readable | null {
    const { body, req, config } = this.exchange;
    if (body === undefined) return null;
    if (Buffer.isBuffer(body)) return body;
    const idleMs = config.body_idle_timeout_ms;
    return streamedBody(req, body, idleMs, () => this.cancel(new BodyIdleTimeoutError(idleMs, 'request')));
  }

  /** End the attempt for `error` (the client left, `timeout_ms`, an idle client). */
  cancel(error: Error): void {
    if (this.#done || this.#cancelled) return;
    this.#cancelled = error;
    if (this.#abort) {
      this.#abort(error);
      return;
    }
    // Still queued in undici (connecting): answer now; undici reports the end when it takes the request.
    this.#detached = true;
    this.exchange.failed(this, error);
  }

  onConnect(abort: (error?: Error) => void): void {
    this.#abort = abort;
    if (this.#cancelled) abort(this.#cancelled);
  }

  onBodySent(): void {
    this.bodySent = true;
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // Interim responses (103) are not relayed; undici reads on to the final one.
    if (status < 200) return true;
    this.#resume = resume;
    this.#status = status;
    this.answered = true;
    // A header Node refuses throws here: undici aborts the request with it (502).
    this.exchange.res.writeHead(status, downstreamResponseHeaders(rawHeaders));
    return true;
  }

  onData(chunk: Buffer): boolean {
    const { res } = this.exchange;
    if (res.write(chunk)) return true;
    // The client's buffer is full: keep reading ahead up to response_buffer_bytes, then pause
    // undici until the client drains it.
    if (this.#onDrain === undefined) {
      this.#onDrain = () => {
        if (!this.#paused) return;
        this.#paused = false;
        this.#resume?.();
      };
      res.on('drain', this.#onDrain);
    }
    if (res.writableLength < this.exchange.config.response_buffer_bytes) return true;
    this.#paused = true;
    this.#armIdle();
    return false;
  }

  /** A client that reads nothing for `body_idle_timeout_ms` while undici is paused is cut. One timer per stalling response, re-armed at each stall. */
  #armIdle(): void {
    if (this.#idle) {
      this.#idle.refresh();
      return;
    }
    const idleMs = this.exchange.config.body_idle_timeout_ms;
    this.#idle = setTimeout(() => {
      if (!this.#paused || this.#done) return;
      this.cancel(new BodyIdleTimeoutError(idleMs, 'response'));
      this.exchange.res.destroy();
    }, idleMs).unref();
  }

  onComplete(): void {
    this.#finish();
    const { exchange } = this;
    exchange.res.end();
    const { upstream } = exchange;
    upstream.observer?.upstreamRequest(upstream.name, this.target.origin, codeClass(this.#status), (performance.now() - this.#startedAt) / 1000);
    if (this.#span) endHttpSpan(this.#span, this.#status, undefined, 400);
    exchange.succeeded();
  }

  onError(error: Error): void {
    // undici reports a throw from onComplete as an error: the attempt already ended.
    if (this.#done) return;
    this.#finish();
    const reason = this.#cancelled ?? error;
    const { upstream } = this.exchange;
    upstream.observer?.upstreamRequest(upstream.name, this.target.origin, 'error', (performance.now() - this.#startedAt) / 1000);
    if (this.#span) {
      const type = errorCode(reason) ?? (reason instanceof Error ? reason.name : 'error');
      endHttpSpan(this.#span, this.answered ? this.#status : undefined, { type, message: errorMessage(reason) }, 400);
    }
    // A client that left or stalled is not an upstream failure worth a log line.
    if (!(reason instanceof ClientAbortedError || reason instanceof BodyIdleTimeoutError)) {
      const logged = this.target.pool.attemptErrors.checkError(upstream.name, reason);
      if (logged)
        upstream.log.warn({ target: this.target.origin, attempt: this.index, ...logged, generation: this.exchange.ctx.generation }, 'upstream_attempt_failed');
    }
    if (!this.#detached) this.exchange.failed(this, reason);
  }

  /** undici is done with the connection: give back the slot, stop watching the client. */
  #finish(): void {
    this.#done = true;
    clearTimeout(this.#idle);
    if (this.#onDrain) this.exchange.res.off('drain', this.#onDrain);
    this.target.pool.slots.release(this.exchange.streaming);
  }
}

/** `headers` plus the trace context of `span` (`traceparent`, `tracestate`), as a new list. */
function withTraceContext(headers: readonly string[], span: Span): string[] {
  const out = headers.slice();
  HTTP_PROPAGATOR.inject(trace.setSpan(ROOT_CONTEXT, span), out, HEADER_LIST_SETTER);
  return out;
}

/**
 * A client span's attributes. `url.full` is the origin followed by the path as sent: resolving
 * the path against the origin would read a path starting with `//` as another host.
 */
function clientAttributes(target: ProxyTarget, path: string, attempt: number, method: string): Attributes {
  const attributes: Attributes = {
    [ATTR_SERVER_ADDRESS]: target.serverAddress,
    [ATTR_SERVER_PORT]: target.serverPort,
    [ATTR_URL_FULL]: target.origin + path,
  };
  if (attempt > 0) attributes[ATTR_HTTP_REQUEST_RESEND_COUNT] = attempt;
  setRequestMethod(attributes, method);
  return attributes;
}
