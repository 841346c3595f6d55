import sinon, { type SinonStub } from 'sinon';
import type { ResourceFactory } from '../../lib/registry/registry.js';
import type { ACCESS_LOG_FILE_KIND } from '../../lib/resources/access-log.js';
import type { FILE_WATCH_KIND } from '../../lib/resources/file-watch.js';
import type { HEALTH_CHECKER_KIND, TARGET_HEALTH_KIND } from '../../lib/resources/health.js';
import type { HTTP_STACK_KIND } from '../../lib/resources/http-stack.js';
import type { ResourceKind, ResourceKinds } from '../../lib/resources/kind.js';
import { RESOURCE_KINDS } from '../../lib/resources/kinds.js';
import type { LISTENER_KIND } from '../../lib/resources/listener.js';
import type { TLS_CERTIFICATE_KIND } from '../../lib/resources/tls-certificate.js';
import type { TRACER_PROVIDER_KIND } from '../../lib/resources/tracing.js';
import type { UPSTREAM_POOL_KIND } from '../../lib/resources/upstream.js';

/** Registry kind names of every resource kind that exists (`tracer_provider`, `listener`, ...). */
export type KindName =
  | typeof TRACER_PROVIDER_KIND
  | typeof LISTENER_KIND
  | typeof HTTP_STACK_KIND
  | typeof TLS_CERTIFICATE_KIND
  | typeof FILE_WATCH_KIND
  | typeof TARGET_HEALTH_KIND
  | typeof HEALTH_CHECKER_KIND
  | typeof UPSTREAM_POOL_KIND
  | typeof ACCESS_LOG_FILE_KIND;
export const KIND_NAMES = RESOURCE_KINDS.map((kind) => kind.kind as KindName);

/**
 * How to break one `create`: `throw` rejects at once; `hang` never settles; `late` settles with
 * the real value only after `lateMs` (past the registry's create timeout, so the registry must
 * destroy a value it no longer waits for).
 */
export interface CreateFault {
  mode: 'throw' | 'hang' | 'late';
  /** Which create to break, counted from `armCreate` (0 = the next one), over every kind. */
  at: number;
  /** Count only this kind's creates. */
  kind?: KindName;
  /** Error message for `throw` (to check what it quotes is scrubbed). */
  message?: string;
  lateMs?: number;
}

/** The error an injected `throw` fault raises. */
export class InjectedFault extends Error {
  readonly code = 'E_INJECTED_FAULT';
}

/**
 * Fault injection on the `ResourceKinds` seam: every kind's `factory` is a sinon stub that calls
 * through to the real one and wraps the factory it returns, so the real resources are built
 * unless a fault is armed. Works for every kind in `RESOURCE_KINDS`, so new kinds are covered
 * without changes here.
 */
export class FaultyKinds {
  readonly kinds: ResourceKinds;
  /** The builder stubs, by kind, for call counts. */
  readonly stubs: Record<KindName, SinonStub>;
  /** Every create attempted since construction, in order. */
  readonly creates: { kind: KindName; outcome: 'ok' | 'threw' | 'hung' | 'late' }[] = [];
  /** Values destroyed after a `late` create (the registry's late-destroy path), by kind. */
  readonly lateDestroyed: KindName[] = [];
  #fault: CreateFault | undefined;
  #counted = 0;
  readonly #destroyGates = new Map<KindName, Promise<void>>();
  readonly #destroyFailures = new Map<KindName, string>();
  readonly #lateValues = new WeakSet<object>();
  readonly #onHang: ((kind: KindName) => void) | undefined;

  constructor(real: readonly ResourceKind<never, unknown>[] = RESOURCE_KINDS, options: { onHang?: (kind: KindName) => void } = {}) {
    this.#onHang = options.onHang;
    const kinds: Record<string, ResourceKind<never, unknown>> = {};
    const stubs = {} as Record<KindName, SinonStub>;
    for (const kind of real) {
      const name = kind.kind as KindName;
      stubs[name] = sinon.stub().callsFake((input: never, deps: Parameters<typeof kind.factory>[1]) => this.#wrap(name, kind.factory(input, deps)));
      kinds[name] = { kind: kind.kind, key: (input) => kind.key(input), factory: stubs[name] };
    }
    this.kinds = kinds;
    this.stubs = stubs;
  }

  /** Break one upcoming create (replaces any fault armed before). */
  armCreate(fault: CreateFault): void {
    this.#fault = fault;
    this.#counted = 0;
  }

  disarm(): void {
    this.#fault = undefined;
  }

  /** Make every `destroy` of `kind` block until the returned function is called. */
  hangDestroys(kind: KindName): () => void {
    let open!: () => void;
    this.#destroyGates.set(kind, new Promise<void>((resolve) => (open = resolve)));
    return () => {
      this.#destroyGates.delete(kind);
      open();
    };
  }

  /** Make every `destroy` of `kind` throw `message` after the real destroy ran. */
  failDestroys(kind: KindName, message: string): void {
    this.#destroyFailures.set(kind, message);
  }

  #wrap(kind: KindName, factory: ResourceFactory<unknown>): ResourceFactory<unknown> {
    return {
      create: () => {
        const fault = this.#take(kind);
        if (!fault) {
          this.creates.push({ kind, outcome: 'ok' });
          return factory.create();
        }
        if (fault.mode === 'throw') {
          this.creates.push({ kind, outcome: 'threw' });
          throw new InjectedFault(fault.message ?? `injected create failure of ${String(kind)}`);
        }
        if (fault.mode === 'hang') {
          this.creates.push({ kind, outcome: 'hung' });
          this.#onHang?.(kind);
          return new Promise<never>(() => {});
        }
        this.creates.push({ kind, outcome: 'late' });
        return new Promise((resolve) => setTimeout(resolve, fault.lateMs ?? 0))
          .then(() => factory.create())
          .then((value) => {
            if (typeof value === 'object' && value !== null) this.#lateValues.add(value);
            return value;
          });
      },
      destroy: async (value) => {
        await this.#destroyGates.get(kind);
        await factory.destroy(value);
        if (typeof value === 'object' && value !== null && this.#lateValues.has(value)) this.lateDestroyed.push(kind);
        const failure = this.#destroyFailures.get(kind);
        if (failure !== undefined) throw new InjectedFault(failure);
      },
    };
  }

  #take(kind: KindName): CreateFault | undefined {
    const fault = this.#fault;
    if (!fault || (fault.kind !== undefined && fault.kind !== kind)) return undefined;
    const index = this.#counted;
    this.#counted += 1;
    if (index !== fault.at) return undefined;
    this.#fault = undefined;
    return fault;
  }
}
