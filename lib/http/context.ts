import { AsyncLocalStorage } from 'node:async_hooks';
import type { Span } from '@opentelemetry/api';
import type { CompiledRoute, RequestTarget } from './router.js';

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
}

// AsyncLocalStorage is keyed by async context, not shared mutable state: one store for the module.
const store = new AsyncLocalStorage<RequestContext>();

/** Run `fn` with `ctx` as the current request context. */
export function runInRequestContext<T>(ctx: RequestContext, fn: () => T): T {
  return store.run(ctx, fn);
}

/** The context of the request being handled in this async scope, if any. */
export function currentRequest(): RequestContext | undefined {
  return store.getStore();
}
