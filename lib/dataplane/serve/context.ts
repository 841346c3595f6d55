import { AsyncLocalStorage } from 'node:async_hooks';
import type { RequestContext } from '../ports.js';

// AsyncLocalStorage is keyed by async context, not shared mutable state: one store for the module.
// Only `run()` enters it: `enterWith` would leak a request's context into the next request on
// the same keepalive connection (the APISIX #13200 lesson).
const store = new AsyncLocalStorage<RequestContext>();

/** Run `fn` with `ctx` as the current request context. */
export function runInRequestContext<T>(ctx: RequestContext, fn: () => T): T {
  return store.run(ctx, fn);
}

/** The context of the request being handled in this async scope, if any. */
export function currentRequest(): RequestContext | undefined {
  return store.getStore();
}
