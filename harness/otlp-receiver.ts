import { createServer } from 'node:http';
import { onCleanup } from './cleanup.js';
import { TrackedServer } from './tracked-server.js';

/** A span as received over OTLP/HTTP JSON, flattened for assertions. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  /** OTLP span kind number (2 = SERVER, 3 = CLIENT). */
  kind: number;
  attributes: Record<string, unknown>;
  serviceName: string | undefined;
}

/**
 * An in-process OTLP/HTTP trace receiver (JSON, as `@opentelemetry/exporter-trace-otlp-http`
 * sends) on a loopback port. It records every span and every TCP connection exporters open, so
 * specs can count both: a leaked exporter shows up as a connection that stays open.
 */
export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  /** Export requests received. */
  requests = 0;
  /** Spans received, also when they are not retained. */
  spanCount = 0;
  #retainSpans = true;
  readonly #server: TrackedServer;
  #url = '';

  private constructor() {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.requests += 1;
        try {
          this.#record(JSON.parse(Buffer.concat(chunks).toString('utf8')));
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{}');
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
  static async start(options: { autoClose?: boolean; retainSpans?: boolean } = {}): Promise<OtlpReceiver> {
    const receiver = new OtlpReceiver();
    receiver.#retainSpans = options.retainSpans ?? true;
    receiver.#url = `http://127.0.0.1:${await receiver.#server.listen()}/v1/traces`;
    if (options.autoClose ?? true) onCleanup(() => receiver.close());
    return receiver;
  }

  /** The OTLP traces endpoint URL. */
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
  close(): Promise<void> {
    return this.#server.close();
  }

  #record(body: { resourceSpans?: unknown[] }): void {
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
