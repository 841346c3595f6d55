import { createServer as createHttpServer, type IncomingHttpHeaders } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { onCleanup } from './cleanup.js';
import { decodeTraceRequest, OTLP_TRACE_GRPC_PATH } from './otlp-proto.js';
import { TrackedServer } from './tracked-server.js';

/** A span as received over OTLP (any encoding), flattened for assertions. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  /** OTLP span kind number (2 = SERVER, 3 = CLIENT). */
  kind: number;
  attributes: Record<string, unknown>;
  serviceName: string | undefined;
  /** Every resource attribute of the batch the span came in. */
  resource: Record<string, unknown>;
}

/**
 * `http`: OTLP/HTTP, JSON (`exporter-trace-otlp-http`) or protobuf (`-proto`) by content type, on
 * `url` (`http://127.0.0.1:PORT/v1/traces`). `grpc`: OTLP/gRPC (`-grpc`), a `@grpc/grpc-js`
 * server with the trace service on `url` (`http://127.0.0.1:PORT`).
 */
export type OtlpReceiverProtocol = 'http' | 'grpc';

/**
 * An in-process OTLP trace receiver on a loopback port, for every exporter hotconf has. It
 * records every span and every TCP connection exporters open, so specs can count both: a leaked
 * exporter shows up as a connection that stays open. For gRPC the TCP connections are accepted
 * by a plain `net.Server` (counted like the HTTP ones) and handed to the gRPC server through its
 * connection injector, which is how a connection count exists for gRPC at all.
 */
export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  /** Export requests received. */
  requests = 0;
  /** Spans received, also when they are not retained. */
  spanCount = 0;
  /** Headers (HTTP) or metadata (gRPC) of the latest export request. */
  lastHeaders: Record<string, string> = {};
  readonly protocol: OtlpReceiverProtocol;
  #retainSpans = true;
  readonly #server: TrackedServer;
  readonly #grpc: grpc.Server | undefined;
  #url = '';

  private constructor(protocol: OtlpReceiverProtocol) {
    this.protocol = protocol;
    if (protocol === 'grpc') {
      this.#grpc = new grpc.Server();
      this.#grpc.addService(TRACE_SERVICE, {
        export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          this.lastHeaders = Object.fromEntries(Object.entries(call.metadata.getMap()).map(([k, v]) => [k, String(v)]));
          try {
            this.#receive(decodeTraceRequest(call.request));
            callback(null, Buffer.alloc(0)); // an empty ExportTraceServiceResponse
          } catch (error) {
            callback({ code: grpc.status.INVALID_ARGUMENT, details: String(error) });
          }
        },
      });
      const injector = this.#grpc.createConnectionInjector(grpc.ServerCredentials.createInsecure());
      const server = createNetServer((socket) => injector.injectConnection(socket));
      this.#server = new TrackedServer(server);
      return;
    }
    const server = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.lastHeaders = headerRecord(req.headers);
        try {
          const body = Buffer.concat(chunks);
          const protobuf = req.headers['content-type'] === 'application/x-protobuf';
          this.#receive(protobuf ? decodeTraceRequest(body) : JSON.parse(body.toString('utf8')));
          // An empty ExportTraceServiceResponse in the request's encoding.
          res.writeHead(200, { 'content-type': protobuf ? 'application/x-protobuf' : 'application/json' });
          res.end(protobuf ? '' : '{}');
        } catch (error) {
          res.writeHead(400);
          res.end(String(error));
        }
      });
    });
    // Like a collector, keep idle exporter connections open: a leaked agent's socket stays visible.
    server.keepAliveTimeout = 0;
    this.#server = new TrackedServer(server);
  }

  /**
   * Start on 127.0.0.1 (any port). Closed after the current test unless `autoClose` is false
   * (benchmarks, which close it themselves). `retainSpans: false` only counts spans, so a
   * long soak does not measure the receiver's own memory.
   */
  static async start(options: { autoClose?: boolean; retainSpans?: boolean; protocol?: OtlpReceiverProtocol } = {}): Promise<OtlpReceiver> {
    const receiver = new OtlpReceiver(options.protocol ?? 'http');
    receiver.#retainSpans = options.retainSpans ?? true;
    const port = await receiver.#server.listen();
    receiver.#url = receiver.protocol === 'grpc' ? `http://127.0.0.1:${port}` : `http://127.0.0.1:${port}/v1/traces`;
    if (options.autoClose ?? true) onCleanup(() => receiver.close());
    return receiver;
  }

  /** The OTLP traces endpoint URL (for gRPC: `http://HOST:PORT`, no path). */
  get url(): string {
    return this.#url;
  }

  /** TCP connections ever accepted from exporters. */
  get connectionsOpened(): number {
    return this.#server.connectionsOpened;
  }

  /** TCP connections currently open from exporters. */
  get openConnections(): number {
    return this.#server.openConnections;
  }

  /** Stop listening and destroy every connection. Idempotent. */
  async close(): Promise<void> {
    await this.#server.close();
    this.#grpc?.forceShutdown();
  }

  #receive(body: { resourceSpans?: unknown[] }): void {
    this.requests += 1;
    for (const rs of (body.resourceSpans ?? []) as { resource?: { attributes?: KeyValue[] }; scopeSpans?: { spans?: RawSpan[] }[] }[]) {
      const resource = flatten(rs.resource?.attributes);
      for (const ss of rs.scopeSpans ?? []) {
        for (const span of ss.spans ?? []) {
          this.spanCount += 1;
          if (!this.#retainSpans) continue;
          this.spans.push({
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: span.parentSpanId || undefined,
            name: span.name,
            kind: span.kind,
            attributes: flatten(span.attributes),
            serviceName: resource['service.name'] as string | undefined,
            resource,
          });
        }
      }
    }
  }
}

interface KeyValue {
  key: string;
  value: Record<string, unknown>;
}
interface RawSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: KeyValue[];
}

function flatten(attributes: KeyValue[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of attributes ?? []) {
    const v = value.stringValue ?? value.intValue ?? value.doubleValue ?? value.boolValue ?? value.arrayValue;
    out[key] = typeof v === 'string' && value.intValue !== undefined ? Number(v) : v;
  }
  return out;
}

/** The OTLP trace service: one unary `Export` on raw bytes (decoded by `decodeTraceRequest`). */
const TRACE_SERVICE: grpc.ServiceDefinition = {
  export: {
    path: OTLP_TRACE_GRPC_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: (bytes: Buffer) => bytes,
    requestDeserialize: (bytes: Buffer) => bytes,
    responseSerialize: (bytes: Buffer) => bytes,
    responseDeserialize: (bytes: Buffer) => bytes,
  },
};

function headerRecord(headers: IncomingHttpHeaders): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]));
}
