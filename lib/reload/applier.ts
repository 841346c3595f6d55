import type { LoadedConfig } from '../config/parse.js';
import { DEFAULT_SHUTDOWN_TIMEOUT_MS } from '../config/schema.js';
import type { Logger } from '../core/log.js';
import { keepsTunnel } from '../dataplane/tunnel/binding.js';
import { NO_TLS_MATERIAL, type TlsMaterial } from '../net/tls-files.js';
import type { ListenerHandle, OpenTunnel } from '../resources/listener.js';
import type { RawDocument } from '../sources/source.js';
import { Generation, type ReleaseReport } from './generation.js';
import { type ProvisionContext, type ProvisionReport, provision } from './provision.js';

export interface ApplierOptions extends ProvisionContext {
  /** The reload component's logger. */
  log: Logger;
  /** Called after every swap with the generation now active (undefined once stopping): the daemon's wiring follows it (the tracer). */
  onSwap?: (active: Generation | undefined) => void;
  /** Called when a replaced generation has drained and released everything. */
  onReleased?: (generation: Generation, report: ReleaseReport) => void;
}

/** `prepared`: `generation` is provisioned, not yet serving. `stopped`: the applier began stopping meanwhile; what was provisioned is released. */
export type PrepareOutcome = { kind: 'prepared'; generation: Generation; provisioned: ProvisionReport } | { kind: 'stopped'; provisioned: ProvisionReport };

/** `applied`: `generation` serves now. `stopped`: the applier began stopping meanwhile; nothing was swapped. */
export type ApplyOutcome = { kind: 'applied'; generation: Generation; provisioned: ProvisionReport } | { kind: 'stopped'; provisioned: ProvisionReport };

/**
 * The worker's half of a reload: provision a loaded config as a new generation through the
 * registry (unchanged sections reuse their resources), swap it in atomically, and retire the one
 * it replaces (drain, bounded by that generation's `shutdown_timeout_ms`, then release). A
 * failed provision leaves the active generation serving. Not re-entrant: the `ReloadQueue` runs
 * one `apply` at a time.
 */
export class Applier {
  readonly #options: ApplierOptions;
  readonly #retiring = new Map<Generation, Promise<void>>();
  #active: Generation | undefined;
  /** The generation the running apply is provisioning, if any. */
  #provisioning: Generation | undefined;
  #stopping = false;
  #cutDrains = false;

  constructor(options: ApplierOptions) {
    this.#options = options;
  }

  /** The generation new requests are routed to; undefined before the first config and once stopping. */
  get active(): Generation | undefined {
    return this.#active;
  }

  /** Generations not yet released: the active one plus those draining. */
  generations(): Generation[] {
    return [...(this.#active ? [this.#active] : []), ...this.#retiring.keys()];
  }

  /** The drain budget a stop gets: the active config's, else the one being provisioned, else the default, in ms. */
  get shutdownBudgetMs(): number {
    return (this.#active ?? this.#provisioning)?.config.shutdown_timeout_ms ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
  }

  /**
   * Provision `loaded` (with the certificate files `tls` it names, read) as the next generation
   * and make it active: `prepare`, then `commit`.
   * @throws ProvisionError when a resource could not be provisioned (what was acquired is released)
   */
  async apply(loaded: LoadedConfig, doc: RawDocument, tls: TlsMaterial = NO_TLS_MATERIAL): Promise<ApplyOutcome> {
    const prepared = await this.prepare(loaded, doc, tls);
    if (prepared.kind === 'stopped') return prepared;
    this.commit(prepared.generation);
    return { kind: 'applied', generation: prepared.generation, provisioned: prepared.provisioned };
  }

  /**
   * Phase one of a two-phase reload (cluster workers prepare, then all commit or all abort):
   * provision `loaded` (with the certificate files `tls` it names, read) as the next generation
   * without serving it. The generation's id follows the active one's.
   * @throws ProvisionError when a resource could not be provisioned (what was acquired is released)
   */
  async prepare(loaded: LoadedConfig, doc: RawDocument, tls: TlsMaterial = NO_TLS_MATERIAL): Promise<PrepareOutcome> {
    const generation = new Generation((this.#active?.id ?? 0) + 1, loaded.config, loaded.hash, doc.version, doc.source, tls, loaded.references);
    this.#provisioning = generation;
    let provisioned: ProvisionReport;
    try {
      provisioned = await provision(generation, this.#options);
    } finally {
      this.#provisioning = undefined;
    }
    if (this.#stopping) {
      await generation.release();
      return { kind: 'stopped', provisioned };
    }
    return { kind: 'prepared', generation, provisioned };
  }

  /**
   * Phase two: make a prepared generation active (atomic swap) and retire the one it replaces.
   * Returns false, releasing `generation`, when the applier began stopping since it was prepared.
   */
  commit(generation: Generation): boolean {
    if (this.#stopping) {
      void generation.release();
      return false;
    }
    const previous = this.#active;
    generation.activate();
    this.#active = generation;
    this.#options.onSwap?.(generation);
    if (previous) this.#retire(previous);
    this.#reviewTunnels(generation);
    return true;
  }

  /** Phase two when another worker failed: release what `prepare` acquired; the active generation keeps serving. */
  async abort(generation: Generation): Promise<void> {
    await generation.release();
  }

  /** A document that produced the active config again: the active generation reports it as its source. */
  sawDocument(doc: RawDocument): void {
    this.#active?.sawDocument(doc.version, doc.source);
  }

  /** Refuse to swap from now on: an apply that finishes provisioning releases what it built. */
  beginStop(): void {
    this.#stopping = true;
  }

  /**
   * Release what a stuck apply has acquired so far, now: it would otherwise outlive the stop as
   * held references. Whatever it acquires later is released at once (`Generation.hold`).
   */
  async abandonProvisioning(): Promise<void> {
    await this.#provisioning?.release();
  }

  /** Cut the drain of every generation being retired, and of the active one once it is: requests in flight are aborted now. */
  cutDrains(): void {
    this.#cutDrains = true;
    for (const generation of this.#retiring.keys()) generation.cutDrain();
  }

  /**
   * Stop the active generation's listeners accepting, send every tunnel its close frames (their
   * sockets go within `tunnel_close_delay_ms`, bounded by `shutdown_timeout_ms`), retire the
   * active generation, and wait until every generation is released.
   */
  async retireAll(): Promise<void> {
    const last = this.#active;
    const tunnels = this.#tunnels();
    this.#active = undefined;
    this.#options.onSwap?.(undefined);
    if (last) {
      for (const { handle } of last.listeners().values()) handle.stopAccepting();
      const delayMs = Math.min(last.config.tunnel_close_delay_ms, last.config.shutdown_timeout_ms);
      for (const tunnel of tunnels) tunnel.close('shutdown', delayMs);
      this.#retire(last);
    }
    await Promise.all(this.#retiring.values());
  }

  /**
   * After a swap, every open tunnel (on any live generation's listeners) is checked against the
   * new active config: one whose route or target is gone gets its close frames now and its
   * sockets destroyed after `tunnel_close_delay_ms`; every other one is left untouched.
   */
  #reviewTunnels(active: Generation): void {
    for (const tunnel of this.#tunnels()) {
      if (!keepsTunnel(active.config, tunnel.binding)) tunnel.close('route_changed', active.config.tunnel_close_delay_ms);
    }
  }

  /** The open tunnels of every live listener, each once. */
  #tunnels(): OpenTunnel[] {
    const handles = new Set<ListenerHandle>();
    for (const generation of this.generations()) for (const { handle } of generation.listeners().values()) handles.add(handle);
    return [...handles].flatMap((handle) => handle.tunnels.list());
  }

  #retire(generation: Generation): void {
    const log = this.#options.log;
    if (this.#cutDrains) generation.cutDrain();
    const released = (async () => {
      const started = Date.now();
      const aborted = await generation.drain(generation.config.shutdown_timeout_ms);
      const destroyed = await generation.release();
      const report: ReleaseReport = { destroyed, aborted, drain_ms: Date.now() - started };
      log.info({ generation: generation.id, ...report }, 'generation_released');
      this.#options.onReleased?.(generation, report);
    })()
      .catch((err) => log.error({ err, generation: generation.id }, 'generation_release_failed'))
      .finally(() => this.#retiring.delete(generation));
    this.#retiring.set(generation, released);
  }
}
