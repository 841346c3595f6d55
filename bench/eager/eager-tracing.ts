import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { loadConfig } from '../../lib/config/parse.js';

/**
 * The Caddy per-reload leak, reimplemented against the same OpenTelemetry SDK for comparison
 * (caddyserver/caddy modules/caddyhttp/tracing: `newOpenTelemetryWrapper` built the exporter and
 * batch span processor on every provision, and `tracerProviderFactory` only used them when it
 * created the shared provider; on the reuse path they were never shut down).
 *
 * Nothing here is used by hotconf: it exists only so the benchmark can show the leak beside
 * hotconf's registry, under the same reload load.
 */
class CaddyStyleProviderPool {
  #provider: NodeTracerProvider | undefined;
  #refs = 0;

  /** Uses `processor` only when it creates the provider; otherwise drops it on the floor (the bug). */
  getOrCreate(processor: BatchSpanProcessor): NodeTracerProvider {
    this.#provider ??= new NodeTracerProvider({ spanProcessors: [processor] });
    this.#refs += 1;
    return this.#provider;
  }

  async shutdown(): Promise<void> {
    this.#refs = 0;
    await this.#provider?.shutdown();
  }
}

/**
 * A config controller with the eager pattern: `POST /reload` re-reads the config text, validates
 * it with hotconf's schema, then builds an OTLP exporter and batch processor for its tracing
 * section, exports one provisioning span through them (as the module's first use would), and
 * hands them to the ref-counted pool.
 */
export class EagerTracingController {
  readonly #pool = new CaddyStyleProviderPool();
  readonly #read: () => Promise<string>;
  #server: Server | undefined;

  constructor(read: () => Promise<string>) {
    this.#read = read;
  }

  async reload(): Promise<void> {
    const { config } = loadConfig(await this.#read());
    if (!config.tracing) return;
    const exporter = new OTLPTraceExporter({ url: config.tracing.endpoint });
    const processor = new BatchSpanProcessor(exporter, { scheduledDelayMillis: config.tracing.batch.scheduled_delay_ms });
    const scratch = new NodeTracerProvider({ spanProcessors: [processor] });
    scratch.getTracer('eager').startSpan('provision').end();
    await processor.forceFlush();
    this.#pool.getOrCreate(processor);
  }

  /** Serve `POST /reload` on 127.0.0.1 (any port); resolves with the base URL. */
  async listen(): Promise<string> {
    const server = createServer((req, res) => {
      this.reload().then(
        () => res.end('{"result":"applied"}'),
        (error: Error) => {
          res.statusCode = 500;
          res.end(JSON.stringify({ result: 'failed', error: error.message }));
        },
      );
      req.resume();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    this.#server = server;
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    const server = this.#server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    server?.closeAllConnections();
    await this.#pool.shutdown();
  }
}
