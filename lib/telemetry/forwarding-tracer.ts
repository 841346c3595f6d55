import {
  type Context,
  context,
  ProxyTracerProvider,
  propagation,
  type Span,
  type SpanOptions,
  type Tracer,
  type TracerOptions,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';

const NOOP_PROVIDER: TracerProvider = new ProxyTracerProvider();

/**
 * A `TracerProvider` that forwards every span to whichever provider is current, so code holding
 * a tracer from it (third-party instrumentation, hotconf's own reload spans) follows reloads.
 *
 * The OpenTelemetry API lets the global provider be registered once per process; registering a
 * new provider per reload silently fails. So one forwarding provider is registered once and its
 * delegate is repointed at each swap. Tracers are resolved per span, never cached across a
 * delegate change, so no span is started on a provider that was shut down.
 */
export class ForwardingTracerProvider implements TracerProvider {
  #delegate: TracerProvider = NOOP_PROVIDER;

  /** Point at `provider` (undefined: no tracing, spans are no-ops). */
  setDelegate(provider: TracerProvider | undefined): void {
    this.#delegate = provider ?? NOOP_PROVIDER;
  }

  get delegate(): TracerProvider {
    return this.#delegate;
  }

  getTracer(name: string, version?: string, options?: TracerOptions): Tracer {
    return new ForwardingTracer(this, name, version, options);
  }
}

class ForwardingTracer implements Tracer {
  readonly #owner: ForwardingTracerProvider;
  readonly #name: string;
  readonly #version: string | undefined;
  readonly #options: TracerOptions | undefined;

  constructor(owner: ForwardingTracerProvider, name: string, version?: string, options?: TracerOptions) {
    this.#owner = owner;
    this.#name = name;
    this.#version = version;
    this.#options = options;
  }

  startSpan(name: string, options?: SpanOptions, ctx?: Context): Span {
    return this.#current().startSpan(name, options, ctx);
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, ...rest: unknown[]): ReturnType<F> {
    const tracer = this.#current() as unknown as { startActiveSpan(name: string, ...args: unknown[]): ReturnType<F> };
    return tracer.startActiveSpan(name, ...rest);
  }

  #current(): Tracer {
    return this.#owner.delegate.getTracer(this.#name, this.#version, this.#options);
  }
}

/** The W3C trace-context + baggage propagator hotconf reads `traceparent` with. */
export const HTTP_PROPAGATOR = new CompositePropagator({
  propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
});

let globalInstalled = false;

/**
 * Register the process-wide OpenTelemetry globals once: `provider` as the global tracer
 * provider, an AsyncLocalStorage context manager and the W3C propagator. This is the one
 * module-level singleton in hotconf (the OpenTelemetry API's globals are process-wide by
 * design). Returns false, changing nothing, when already installed in this process.
 */
export function installGlobalTelemetry(provider: ForwardingTracerProvider): boolean {
  if (globalInstalled) return false;
  globalInstalled = true;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(HTTP_PROPAGATOR);
  trace.setGlobalTracerProvider(provider);
  return true;
}
