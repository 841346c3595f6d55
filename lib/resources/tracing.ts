import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Metadata } from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode, type Tracer, type TracerProvider } from '@opentelemetry/api';
import { type ExportResult, ExportResultCode, hrTimeToMilliseconds, hrTimeToTimeStamp } from '@opentelemetry/core';
import { OTLPTraceExporter as GrpcTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { type Resource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  type ReadableSpan,
  type SpanExporter,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { HotconfError } from '../core/errors.js';
import { type Logger, silentLogger } from '../core/log.js';
import { withTimeout } from '../core/timeout.js';
import { sectionKey } from '../registry/key.js';
import type { ResourceFactory } from '../registry/registry.js';
import type { ResolvedTracing } from '../telemetry/otel-env.js';
import type { ResourceKind } from './kind.js';

/** Registry kind (and metric label) of tracing pipelines. */
export const TRACER_PROVIDER_KIND = 'tracer_provider';

/** Instrumentation scope of the spans hotconf itself starts. */
export const TRACER_NAME = 'hotconf';

/**
 * One tracing pipeline: batch span processor + exporter, the resource its spans describe, and
 * the HTTP agent the OTLP exporter sends through (OTLP/HTTP only; the gRPC exporter's channel is
 * its own and closed by its `shutdown`). Everything here is built in `create` and torn down in
 * `destroy`. It samples nothing itself: each generation samples over it (`generationTracing`),
 * so a new `sample_ratio` costs no pipeline.
 */
export interface TracingPipeline {
  /** Where ended spans go: the batch span processor (none for exporter `none`). */
  readonly spanProcessors: readonly SpanProcessor[];
  /** `service.name` and the other resource attributes of every span. */
  readonly resource: Resource;
  /** The exporter's keep-alive agent (`otlp-http`, `otlp-proto`), owned by this pipeline. */
  readonly agent: HttpAgent | undefined;
}

/**
 * A generation's tracing: its own tracer provider, sampling at its `sample_ratio` with a
 * parent-based ratio sampler, over the shared `pipeline` (its span processor and resource).
 */
export interface GenerationTracing {
  readonly pipeline: TracingPipeline;
  /** The provider the process's forwarding provider points at while this generation is active. */
  readonly provider: TracerProvider;
  /** `provider.getTracer('hotconf')`. */
  readonly tracer: Tracer;
  /** The ratio `provider` samples root spans at, 0..1. */
  readonly sampleRatio: number;
}

/**
 * The tracer provider of one generation: a `NodeTracerProvider` whose sampler is
 * `ParentBased(TraceIdRatioBased(sampleRatio))` and whose only span processor is the pipeline's.
 * It is cheap (no exporter, processor, timer or socket) and owns nothing: never flush or shut it
 * down, the pipeline's `destroy` does. So the sampler is keyed apart from the pipeline, as
 * OpenTelemetry specification issue #3771 asks of SDKs: changing only the ratio rebuilds no
 * exporter, and generations that overlap each sample at their own ratio.
 *
 * @param sampleRatio 0..1, of root spans (children follow their parent's decision)
 */
export function generationTracing(pipeline: TracingPipeline, sampleRatio: number): GenerationTracing {
  const provider = new NodeTracerProvider({
    resource: pipeline.resource,
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(sampleRatio) }),
    spanProcessors: [...pipeline.spanProcessors],
  });
  return { pipeline, provider, tracer: provider.getTracer(TRACER_NAME), sampleRatio };
}

export interface TracingFactoryOptions {
  /** Budget for the final flush + shutdown in `destroy`, in ms. Default 5000. */
  flushTimeoutMs?: number;
  /** Builds the exporter; injectable for fault tests. Default: from `section.exporter`. */
  createExporter?: (section: ResolvedTracing, agent: HttpAgent | undefined) => SpanExporter | undefined;
  /** Where `exporter: console` writes its `span` events (a `tracing` child is made). Default: nowhere. */
  logger?: Logger;
  /**
   * Called for every batch the exporter failed to send (collector down, rejected, timed out).
   * The SDK drops such a batch and reports it to OpenTelemetry's global error handler only,
   * which logs nothing unless a diag logger is set: this is how the daemon counts them.
   */
  onExportError?: (error: Error) => void;
}

/**
 * The registry factory for a `tracing` section, resolved against the environment
 * (`resolveTracing`; key: `tracingPipelineKey(section)`, which leaves out `sample_ratio`).
 *
 * `create` builds the resource, a `BatchSpanProcessor` configured from `section.batch`, and the
 * exporter (`none`: no processor;
 * `console`: a `span` log event per span on `options.logger`; `otlp-http`: OTLP/HTTP JSON, `otlp-proto`: OTLP/HTTP protobuf, both to
 * `section.endpoint` with `section.headers`; `otlp-grpc`: OTLP/gRPC to `section.endpoint`, plain
 * text for `http://` and TLS for `https://`, with `section.headers` as metadata). Nothing is built
 * before `create` runs, so reusing a live pipeline allocates nothing (Caddy leaked one exporter
 * and batcher per reload by building them first).
 *
 * The OTLP/HTTP exporters' transport never destroys the keep-alive agent it creates (its
 * `shutdown` is empty, exporter-base 0.223.0), so every replaced exporter would leave sockets
 * open. The pipeline therefore creates the agent itself, hands it over through
 * `httpAgentOptions` as a factory, and destroys it in `destroy` after the processor's
 * `forceFlush` + `shutdown`
 * (bounded by `flushTimeoutMs`; the agent is destroyed even when the flush times out, and the
 * timeout is then reported as a destroy failure: spans were lost). The gRPC exporter's transport
 * does close its channel in `shutdown` (otlp-grpc-exporter-base 0.223.0), after the exports in
 * flight settle: when the flush times out, the channel closes once those reach their own
 * deadline (`export_timeout_ms`), not at once (the exporter gives no handle on its channel).
 */
export function tracerProviderFactory(section: ResolvedTracing, options: TracingFactoryOptions = {}): ResourceFactory<TracingPipeline> {
  const flushTimeoutMs = options.flushTimeoutMs ?? 5000;
  const log = (options.logger ?? silentLogger()).child({ component: 'tracing' });
  const createExporter = options.createExporter ?? ((resolved: ResolvedTracing, agent: HttpAgent | undefined) => createSpanExporter(resolved, agent, log));
  return {
    create() {
      const agent = section.exporter === 'otlp-http' || section.exporter === 'otlp-proto' ? newAgent(section.endpoint) : undefined;
      const built = createExporter(section, agent);
      const exporter = built && options.onExportError ? reportingExporter(built, options.onExportError) : built;
      const spanProcessors: SpanProcessor[] = [];
      if (exporter) {
        spanProcessors.push(
          new BatchSpanProcessor(exporter, {
            scheduledDelayMillis: section.batch.scheduled_delay_ms,
            maxQueueSize: section.batch.max_queue_size,
            maxExportBatchSize: section.batch.max_export_batch_size,
            exportTimeoutMillis: section.batch.export_timeout_ms,
          }),
        );
      }
      const resource = resourceFromAttributes({ ...section.resource_attributes, [ATTR_SERVICE_NAME]: section.service_name });
      return { spanProcessors, resource, agent };
    },
    async destroy({ spanProcessors, agent }) {
      const flushed = Promise.all(
        spanProcessors.map(async (processor) => {
          await processor.forceFlush();
          await processor.shutdown();
        }),
      );
      try {
        await withTimeout(
          flushed,
          flushTimeoutMs,
          () => new HotconfError('E_TRACING_FLUSH_TIMEOUT', `tracing flush did not finish within ${flushTimeoutMs} ms`),
        );
      } finally {
        agent?.destroy();
      }
    },
  };
}

/** `exporter`, calling `onError` for each failed export (the result is passed on unchanged). */
function reportingExporter(exporter: SpanExporter, onError: (error: Error) => void): SpanExporter {
  return {
    export(spans, done) {
      exporter.export(spans, (result) => {
        if (result.code !== ExportResultCode.SUCCESS) onError(result.error ?? new Error('span export failed'));
        done(result);
      });
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
  };
}

function newAgent(endpoint: string): HttpAgent {
  const options = { keepAlive: true, maxSockets: 2 };
  return new URL(endpoint).protocol === 'https:' ? new HttpsAgent(options) : new HttpAgent(options);
}

/**
 * The exporter `section.exporter` names (undefined for `none`), sending through `agent` when it
 * is OTLP/HTTP; `console` writes `span` events to `log`. The factory's default `createExporter`.
 */
export function createSpanExporter(section: ResolvedTracing, agent: HttpAgent | undefined, log: Logger = silentLogger()): SpanExporter | undefined {
  switch (section.exporter) {
    case 'none':
      return undefined;
    case 'console':
      return new LogSpanExporter(log);
    case 'otlp-http':
    case 'otlp-proto': {
      const Exporter = section.exporter === 'otlp-http' ? JsonTraceExporter : ProtoTraceExporter;
      return new Exporter({
        url: section.endpoint,
        headers: { ...section.headers },
        timeoutMillis: section.timeout_ms,
        httpAgentOptions: () => agent as HttpAgent,
      });
    }
    case 'otlp-grpc':
      return new GrpcTraceExporter({ url: section.endpoint, metadata: grpcMetadata(section.headers), timeoutMillis: section.timeout_ms });
  }
}

/**
 * `exporter: console`: each finished span becomes one `span` log event (info) with its fields,
 * so stdout keeps carrying one JSON object per line. The SDK's `ConsoleSpanExporter` prints
 * each span as a multi-line object on stdout, between the log lines.
 */
class LogSpanExporter implements SpanExporter {
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    for (const span of spans) {
      const context = span.spanContext();
      this.#log.info(
        {
          trace_id: context.traceId,
          span_id: context.spanId,
          parent_span_id: span.parentSpanContext?.spanId,
          name: span.name,
          kind: SpanKind[span.kind],
          start_time: hrTimeToTimeStamp(span.startTime),
          duration_ms: hrTimeToMilliseconds(span.duration),
          status: { code: SpanStatusCode[span.status.code], ...(span.status.message ? { message: span.status.message } : {}) },
          attributes: span.attributes,
          events: span.events.map((e) => ({ name: e.name, time: hrTimeToTimeStamp(e.time), attributes: e.attributes })),
        },
        'span',
      );
    }
    done({ code: ExportResultCode.SUCCESS });
  }

  async shutdown(): Promise<void> {}
}

/** `headers` as gRPC metadata (keys are lower-cased by grpc-js, as HTTP/2 requires). */
function grpcMetadata(headers: Readonly<Record<string, string>>): Metadata {
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(headers)) metadata.set(key, value);
  return metadata;
}

/** The pipeline's key: the resolved section without `sample_ratio`, which each generation samples with itself. */
export function tracingPipelineKey(section: ResolvedTracing): string {
  const { sample_ratio: _perGeneration, ...pipeline } = section;
  return sectionKey(pipeline);
}

/** The `tracer_provider` kind: one pipeline per canonical resolved `tracing` section, `sample_ratio` aside. */
export const tracerProviderKind: ResourceKind<ResolvedTracing, TracingPipeline> = {
  kind: TRACER_PROVIDER_KIND,
  key: tracingPipelineKey,
  factory: (section, deps) => tracerProviderFactory(section, { onExportError: (error) => deps.onBackgroundError('exporter', error), logger: deps.logger }),
};
