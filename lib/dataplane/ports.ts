import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Span, Tracer } from '@opentelemetry/api';
import type { TunnelSet } from '../resources/listener.js';
import type { SniTable } from './serve/sni.js';

/**
 * The data plane's ports: what it needs from the reload layer (`ServingGeneration`), and the
 * shapes every part of it shares (targets, routes, actions, the per-request context). Types
 * only; the reload layer implements `ServingGeneration`, and only the daemon's wiring knows both.
 */

/**
 * A request target as routes see it and as it is forwarded: the normalised path, the query as
 * sent (`?` included, or ''), and the authority of an absolute-form target (`http://host/...`),
 * which wins over `Host` (RFC 9112 section 3.2.2).
 */
export interface RequestTarget {
  readonly path: string;
  readonly query: string;
  readonly authority?: string;
}

/**
 * What a matched route does. The set is open: an action is any object with a `type` (a label
 * for logs and metrics) and a `run` that answers the request (`respond`, `proxy`, and whatever
 * a later action adds) without the router or the handler knowing it.
 *
 * `run` must not throw for a request it could answer; a throw is logged and answered 500.
 */
export interface RouteAction {
  readonly type: string;
  run(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void;
}

/**
 * A route compiled for matching. `index` is its position in the listener's `routes`;
 * `pathPrefix` is normalised (`normalizePath`); `methods` is undefined for a route that allows
 * every method but `TRACE`, and includes `HEAD` whenever it includes `GET`.
 */
export interface CompiledRoute {
  readonly index: number;
  readonly pathPrefix: string;
  readonly host: string | undefined;
  readonly methods: ReadonlySet<string> | undefined;
  readonly action: RouteAction;
}

/** The route table of one listener in one generation. */
export interface RouteTable {
  /** First route matching; `host` is already normalised (`normalizeHost`), `path` by `normalizePath`. */
  match(method: string, host: string | undefined, path: string): CompiledRoute | undefined;
  /**
   * When `match` found nothing: the methods the routes matching `host` and `path` allow, as an
   * `Allow` value (`GET, HEAD`), or undefined when no route matches them whatever the method.
   */
  allowedMethods(host: string | undefined, path: string): string | undefined;
}

/**
 * State of one request, created when it arrives and dropped when it ends. It is never stored on
 * the socket or the server: a keepalive connection's next request gets a fresh context bound to
 * whatever generation is active then (APISIX kept a pooled tracing object on the connection and
 * broke every second request on HTTPS keepalive).
 */
export interface RequestContext {
  /** Generation serving this request, fixed at arrival. */
  readonly generation: number;
  /** Registry key of the listener that accepted it. */
  readonly listener: string;
  /** The normalised request target (`normalizeTarget`), parsed once; undefined when it is not a path. */
  readonly target: RequestTarget | undefined;
  readonly route: CompiledRoute | undefined;
  /** The request's server span. */
  readonly span: Span;
  /** `process.hrtime.bigint()` at arrival. */
  readonly startedAt: bigint;
  /** Filled in by the action as the request runs; read when it ends (access log, metrics). */
  readonly outcome: RequestOutcome;
}

/**
 * How a request was served, written by the action that runs it (the proxy sets every field it
 * knows; `respond` and `redirect` leave the upstream fields unset) and read once it ends.
 */
export interface RequestOutcome {
  /** Name of the upstream the request was forwarded to. */
  upstream?: string;
  /** The target (`host:port`) of the last attempt. */
  target?: string;
  /** Attempts made upstream (0 when not proxied; 2 after one retry). */
  attempts: number;
  /**
   * How it ended, when not `complete`: `client_aborted` (the client went away first),
   * `upstream_error` (connect failure, reset, bad response), `timeout` (an upstream timeout).
   */
  ended?: 'client_aborted' | 'upstream_error' | 'timeout';
}

/**
 * Bytes a connection read and wrote, counted across its requests (one counter per listener,
 * surviving reloads, since a keepalive connection outlives a generation).
 */
export interface ConnectionByteCounter {
  /** Sets `into.bytes_in` and `into.bytes_out` to what `socket` read and wrote since the previous call for it. */
  take(socket: Duplex, into: { bytes_in: number | undefined; bytes_out: number | undefined }): void;
}

/** How a request or tunnel ended, as the access log writes it: `complete`, or the `RequestOutcome.ended` reason. */
export type AccessEnded = 'complete' | NonNullable<RequestOutcome['ended']>;

/** A tunnel's line, written when it closed (or when its upgrade was answered without one). */
export interface TunnelAccess {
  readonly generation: number;
  /** The route that matched the upgrade: its index and `path_prefix` (not the route itself, which holds its upstream). */
  readonly route: number;
  readonly pathPrefix: string;
  /** The upgrade request's normalised target. */
  readonly target: RequestTarget;
  /** `process.hrtime.bigint()` when the upgrade request arrived. */
  readonly startedAt: bigint;
  /** 101 for a tunnel; the status of the answer otherwise; 0 when the client left before any. */
  readonly status: number;
  readonly upstream: string;
  /** The upstream target's origin (`http://host:port`, logged as `host:port`); unset when none was chosen (no healthy target). */
  readonly origin: string | undefined;
  readonly ended: AccessEnded;
  /** Why the tunnel closed (`client`, `upstream`, `route_changed`, `shutdown`, `lifetime`); unset when there was none. */
  readonly closeReason?: string;
}

/** A listener's access log in one generation (`AccessLog` in serve/access-log.ts). */
export interface RequestLog {
  /** Write the line of a request whose response just closed. */
  request(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, bytes: ConnectionByteCounter): void;
  /** Write the line of a WebSocket upgrade: its tunnel closed, or it was answered without one. */
  tunnel(req: IncomingMessage, socket: Duplex, entry: TunnelAccess, bytes: ConnectionByteCounter): void;
}

/** What the data plane needs from a generation. Implemented by the reload layer's `Generation`. */
export interface ServingGeneration {
  readonly id: number;
  /** Tracer of this generation's tracing pipeline (a no-op tracer when tracing is off). */
  readonly tracer: Tracer;
  /** Route table for a listener key, undefined when this generation has no such listener. */
  router(listenKey: string): RouteTable | undefined;
  /** Certificates of a TLS listener by SNI name, undefined for a plain listener or one this generation lacks. */
  sni(listenKey: string): SniTable | undefined;
  /** The WebSocket tunnels of a listener (they belong to the listener, not to the generation). */
  tunnels(listenKey: string): TunnelSet | undefined;
  /** The access log of a listener; undefined when it is off (`access_log.enabled: false`) or the listener is not in this generation. */
  accessLog(listenKey: string): RequestLog | undefined;
  /** Canonical JSON of route `index` of a listener: what a tunnel opened by that route is bound to. */
  routeSection(listenKey: string, index: number): string | undefined;
  /**
   * Count a request as in flight on this generation until the returned function is called.
   * `abort` is called if the generation's drain times out with the request still running.
   */
  pin(abort: () => void): () => void;
}
