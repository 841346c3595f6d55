import type { LoadedConfig } from '../config/parse.js';
import type { Logger } from '../core/log.js';
import { Once } from '../core/once.js';
import type { TlsMaterial } from '../net/tls-files.js';
import { ResourceRegistry } from '../registry/registry.js';
import { Applier } from '../reload/applier.js';
import { FILE_WATCH_STEPS, HEALTH_CHECK_STEPS } from '../reload/provision.js';
import type { ReloadTrigger } from '../reload/queue.js';
import type { HealthObserver } from '../resources/kind.js';
import type { RawDocument } from '../sources/source.js';

/** One target's health as the primary's checkers see it. */
export interface HealthTransition {
  upstream: string;
  target: string;
  healthy: boolean;
}

/**
 * The cluster primary's health checking: the same `target_health` and `health_checker`
 * resources a single process provisions (`HEALTH_CHECK_STEPS`, in a registry of its own, so
 * states survive reloads and checkers are rebuilt only when their section changes), run once for
 * all workers. Every transition goes to `broadcast`; `snapshot()` is what a worker that joins
 * later is told.
 *
 * It also holds the watches of the committed config's certificate and key files and of the
 * files its secret references name (`FILE_WATCH_STEPS`): the primary reads those and runs
 * reloads, so a change there calls `requestReload` here (a worker's watches request nothing).
 */
export class HealthPlane {
  readonly #registry: ResourceRegistry;
  readonly #applier: Applier;
  readonly #log: Logger;
  readonly #last = new Map<string, HealthTransition>();
  readonly #stop = new Once(() => this.#stopNow());

  constructor(options: {
    logger: Logger;
    observer: HealthObserver;
    broadcast: (transition: HealthTransition) => void;
    /** A watched file changed (trigger `files`). */
    requestReload?: (trigger: ReloadTrigger) => void;
  }) {
    this.#log = options.logger.child({ component: 'health_plane' });
    this.#registry = new ResourceRegistry({ logger: options.logger });
    const observer: HealthObserver = {
      healthCheckError: (upstream) => options.observer.healthCheckError(upstream),
      healthChanged: (upstream, target, healthy) => {
        const transition = { upstream, target, healthy };
        this.#last.set(`${upstream} ${target}`, transition);
        options.broadcast(transition);
      },
    };
    this.#applier = new Applier({
      registry: this.#registry,
      deps: {
        onBackgroundError: (component, err) => this.#log.error({ background: component, err }, 'background_error'),
        logger: options.logger,
        observer,
        requestReload: options.requestReload,
      },
      // HEALTH_CHECK_STEPS provision no listener, so nothing asks for a stack's serving.
      serving: () => {
        throw new Error('the health plane serves no listener');
      },
      steps: [...HEALTH_CHECK_STEPS, ...FILE_WATCH_STEPS],
      log: this.#log,
    });
  }

  /** Check the upstreams of a committed config (states and unchanged checkers are reused). Never rejects. */
  async apply(loaded: LoadedConfig, doc: RawDocument, tls?: TlsMaterial): Promise<void> {
    try {
      await this.#applier.apply(loaded, doc, tls);
    } catch (err) {
      this.#log.error({ err }, 'health_plane_provision_failed');
    }
  }

  /** The last health of every target a checker reported a transition for. */
  snapshot(): HealthTransition[] {
    return [...this.#last.values()];
  }

  /** Stop every checker and close the registry. Idempotent. */
  stop(): Promise<void> {
    return this.#stop.call();
  }

  async #stopNow(): Promise<void> {
    this.#applier.beginStop();
    await this.#applier.retireAll();
    await this.#registry.close();
  }
}
