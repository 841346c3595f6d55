import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { REDACTED } from '../../config/redact.js';
import type { AccessEnded, ConnectionByteCounter, RequestContext, RequestLog, TunnelAccess } from '../ports.js';

/** Where access lines go: a destination that takes whole lines (a pino destination, an access log file). */
export interface AccessLineSink {
  write(line: string): void;
}

/** What the access log of one listener, in one generation, writes and where. */
export interface AccessLogOptions {
  /** The listener's `name` (the `listener` field). */
  readonly listener: string;
  /** Where lines go: the daemon logger's destination (stdout) or an access log file. */
  readonly sink: AccessLineSink;
  /** Fields every line starts with, after `level` and `time`: the daemon logger's (`pid`, a worker's `worker`). */
  readonly bindings: Readonly<Record<string, unknown>>;
  /** Keep the query in `path`. */
  readonly includeQuery: boolean;
  /** Request headers to log, lowercased. */
  readonly requestHeaders: readonly string[];
  /** Header names (lowercased) whose values are replaced by `[REDACTED]`. */
  readonly redacted: ReadonlySet<string>;
}

/**
 * Bytes read and written per connection since its previous request ended, for HTTP/1.1: a
 * request's `bytes_in` is its request line, headers and body, its `bytes_out` its status line,
 * headers and body, as nginx's `$request_length` and `$bytes_sent` (TLS: as the TLS socket
 * counts them). One counter per connection, weakly held; HTTP/2 streams share their session's
 * socket, so their bytes are not logged.
 */
export class ConnectionBytes implements ConnectionByteCounter {
  readonly #seen = new WeakMap<Duplex, { read: number; written: number }>();

  /** Sets `line.bytes_in` and `line.bytes_out` from `socket`'s counters since the last call for it. */
  take(socket: Duplex, line: { bytes_in: number | undefined; bytes_out: number | undefined }): void {
    const counters = socket as Duplex & { bytesRead?: number; bytesWritten?: number };
    const read = counters.bytesRead ?? 0;
    const written = counters.bytesWritten ?? 0;
    const last = this.#seen.get(socket);
    if (last) {
      line.bytes_in = read - last.read;
      line.bytes_out = written - last.written;
      last.read = read;
      last.written = written;
    } else {
      line.bytes_in = read;
      line.bytes_out = written;
      this.#seen.set(socket, { read, written });
    }
  }
}

/**
 * One access log line's fields, in the order written; unset ones are left out. `route` is the
 * route's index in the listener's `routes`, `duration_ms` runs from the request's arrival to its
 * response's close (a tunnel's: to its close).
 */
interface AccessLine {
  listener: string;
  generation: number;
  route: number | undefined;
  path_prefix: string | undefined;
  method: string | undefined;
  host: string | undefined;
  path: string | undefined;
  protocol: string;
  status: number;
  bytes_in: number | undefined;
  bytes_out: number | undefined;
  duration_ms: number;
  upstream: string | undefined;
  target: string | undefined;
  attempts: number;
  client_address: string | undefined;
  user_agent: string | undefined;
  trace_id: string | undefined;
  span_id: string | undefined;
  ended: AccessEnded;
  close_reason: string | undefined;
  request_headers: Record<string, string> | undefined;
}

/**
 * The access log of one listener in one generation (nginx's `access_log`, Caddy's `log`): one
 * line per request when its response closes, and per WebSocket tunnel when it closes, in pino's
 * shape (`level` 30, `time`, the daemon logger's bindings, `component` and `msg` `access`, then
 * the fields), whatever the daemon's log level. Called on the hot path, callback-based: one
 * object per line, serialised by one `JSON.stringify` (a third of what pino's per-field
 * serialiser costs here), no closure, nothing asynchronous (a file sink writes in the background).
 *
 * `ended` is what the action recorded (`ctx.outcome.ended`: `upstream_error`, `timeout`,
 * `client_aborted`), else `client_aborted` when the response closed before it finished, else
 * `complete`. The path is the normalised one routes match, without the query unless
 * `include_query`. Headers in `redacted` are never written: listed in `request_headers`, their
 * value is `[REDACTED]`.
 */
export class AccessLog implements RequestLog {
  readonly #options: AccessLogOptions;
  readonly #sink: AccessLineSink;
  /** `"pid":1,"component":"access","msg":"access"`: the fields every line has, serialised once. */
  readonly #fixed: string;

  constructor(options: AccessLogOptions) {
    this.#options = options;
    this.#sink = options.sink;
    this.#fixed = JSON.stringify({ ...options.bindings, component: 'access', msg: 'access' }).slice(1, -1);
  }

  /** Write the line of a request whose response just closed. */
  request(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, bytes: ConnectionByteCounter): void {
    const { outcome, route, span } = ctx;
    const traced = span.isRecording();
    const spanContext = traced ? span.spanContext() : undefined;
    const line: AccessLine = {
      listener: this.#options.listener,
      generation: ctx.generation,
      route: route?.index,
      path_prefix: route?.pathPrefix,
      method: req.method,
      host: req.headers.host ?? (req.headers[':authority'] as string | undefined),
      path: this.#path(req, ctx.target?.path, ctx.target?.query),
      protocol: req.httpVersion,
      status: res.headersSent ? res.statusCode : 0,
      bytes_in: undefined,
      bytes_out: undefined,
      duration_ms: elapsedMs(ctx.startedAt),
      upstream: outcome.upstream,
      target: outcome.target,
      attempts: outcome.attempts,
      client_address: req.socket.remoteAddress,
      user_agent: req.headers['user-agent'],
      trace_id: spanContext?.traceId,
      span_id: spanContext?.spanId,
      ended: outcome.ended ?? (res.writableFinished ? 'complete' : 'client_aborted'),
      close_reason: undefined,
      request_headers: this.#options.requestHeaders.length > 0 ? this.#headers(req) : undefined,
    };
    if (req.httpVersionMajor < 2) bytes.take(req.socket, line);
    this.#write(line);
  }

  /** Write the line of a WebSocket upgrade: its tunnel closed, or it was answered without one. */
  tunnel(req: IncomingMessage, socket: Duplex, entry: TunnelAccess, bytes: ConnectionByteCounter): void {
    const line: AccessLine = {
      listener: this.#options.listener,
      generation: entry.generation,
      route: entry.route,
      path_prefix: entry.pathPrefix,
      method: req.method,
      host: req.headers.host,
      path: this.#path(req, entry.target.path, entry.target.query),
      protocol: req.httpVersion,
      status: entry.status,
      bytes_in: undefined,
      bytes_out: undefined,
      duration_ms: elapsedMs(entry.startedAt),
      upstream: entry.upstream,
      target: entry.origin === undefined ? undefined : entry.origin.slice(entry.origin.indexOf('//') + 2),
      attempts: entry.origin === undefined ? 0 : 1,
      client_address: (socket as { remoteAddress?: string }).remoteAddress,
      user_agent: req.headers['user-agent'],
      trace_id: undefined,
      span_id: undefined,
      ended: entry.ended,
      close_reason: entry.closeReason,
      request_headers: this.#options.requestHeaders.length > 0 ? this.#headers(req) : undefined,
    };
    bytes.take(socket, line);
    this.#write(line);
  }

  /** Unset fields are left out (`JSON.stringify` skips undefined); `listener` is always there, so the object is never empty. */
  #write(line: AccessLine): void {
    this.#sink.write(`{"level":30,"time":"${new Date().toISOString()}",${this.#fixed},${JSON.stringify(line).slice(1)}\n`);
  }

  /** The normalised path (the raw target's path when it did not parse), with the query only when configured. */
  #path(req: IncomingMessage, path: string | undefined, query: string | undefined): string | undefined {
    if (path !== undefined) return this.#options.includeQuery && query ? path + query : path;
    const raw = req.url;
    if (raw === undefined || this.#options.includeQuery) return raw;
    const mark = raw.indexOf('?');
    return mark < 0 ? raw : raw.slice(0, mark);
  }

  #headers(req: IncomingMessage): Record<string, string> {
    const out: Record<string, string> = {};
    for (const name of this.#options.requestHeaders) {
      const value = req.headers[name];
      if (value === undefined) continue;
      out[name] = this.#options.redacted.has(name) ? REDACTED : Array.isArray(value) ? value.join(', ') : value;
    }
    return out;
  }
}

/** Milliseconds since `startedAt` (`process.hrtime.bigint()`), to the microsecond. */
function elapsedMs(startedAt: bigint): number {
  return Math.round(Number(process.hrtime.bigint() - startedAt) / 1000) / 1000;
}
