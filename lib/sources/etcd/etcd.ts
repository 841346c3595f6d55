import { hash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExponentialBackoff, handleWhen, type IBackoff, noop, retry } from 'cockatiel';
import {
  Etcd3,
  GRPCResourceExhastedError,
  type IDuplexStream,
  type IEvent,
  type IKeyValue,
  type IOptions,
  type IRangeRequest,
  type IRangeResponse,
  type IResponseHeader,
  type IWatchRequest,
  type IWatchResponse,
  isRecoverableError,
} from 'etcd3';
import type { Registry } from 'prom-client';
import { decodeDocument } from '../../config/decode.js';
import { DEFAULT_MAX_DOCUMENT_BYTES } from '../../config/parse.js';
import { ConfigInvalidError, errorMessage, SourceReadError, SourceUnavailableError, UsageError } from '../../core/errors.js';
import { type Logger, silentLogger } from '../../core/log.js';
import { Once } from '../../core/once.js';
import type { ConfigSource, RawDocument, RawFragment, SourceInfo, SourceWatchHandlers } from '../source.js';
import { type KeyValue, TrackedKeys } from './keys.js';
import { registerEtcdSourceMetrics } from './metrics.js';
import { type EtcdSourceStats, RESYNC_REASONS, type ResyncReason } from './stats.js';

export interface EtcdSourceOptions {
  /** Client URLs, `http://host:port` or `https://host:port` (not mixed). */
  endpoints: string[];
  /** The key holding the config document. Exactly one of `key` and `prefix`. */
  key?: string;
  /**
   * Every key under this prefix is a fragment of the config (as APISIX stores one route per
   * key), e.g. `/hotconf/routes/`: documents carry `fragments`, one per key. Exactly one of
   * `key` and `prefix`.
   */
  prefix?: string;
  /**
   * With `prefix`: the largest value of a key used, in bytes. A larger value, or one that is not
   * UTF-8, makes a fragment with `error` set (and no text), which the reloader refuses naming the
   * key, keeping the key's last good version. Default `DEFAULT_MAX_DOCUMENT_BYTES` (1 MiB).
   */
  maxFragmentBytes?: number;
  /** TLS material (PEM). `ca` verifies the server; `cert` + `key` authenticate the client. */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  /** etcd user/password auth (the password is never logged nor shown in `describe()`). */
  auth?: { username: string; password: string };
  logger?: Logger;
  /** Deadline of each get (start, SIGHUP, consistency checks) and of establishing a watch, in ms. Default 5000. */
  requestTimeoutMs?: number;
  /** Give up the first read after this long, in ms. Default: wait forever. */
  startupTimeoutMs?: number;
  /** Retry backoff (exponential, decorrelated jitter): first delay and cap, in ms. Defaults 100 and 5000. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** With `prefix`: keys per range request of a read. Default `PREFIX_PAGE_KEYS` (10,000). */
  pageKeys?: number;
  /** Period of the consistency check while watching, in ms. Default 5000. */
  consistencyCheckIntervalMs?: number;
  /** Builds the etcd3 client (tests wrap it to inject faults). Default `new Etcd3(options)`. */
  clientFactory?: (options: IOptions) => Etcd3;
}

/** How one watch session ended. */
type SessionEnd = { kind: 'disconnected'; error: Error } | { kind: 'canceled'; error: Error } | { kind: 'resync'; reason: ResyncReason } | { kind: 'closed' };

/** What the source knows about its keys: the watch resumes from `resume`. */
interface Position {
  /** Next revision to watch from: every change of the range below it has been applied to `keys`. */
  resume: number;
  /** The range's keys as of `resume - 1`: mod revisions (and, for a prefix, fragments). */
  keys: TrackedKeys;
  clusterId: string;
}

/** The range's keys and values at one revision (`header.revision`), from one or more range requests. */
interface Snapshot {
  header: IResponseHeader;
  kvs: IKeyValue[];
}

/** Keys per range request of a prefix read (halved while a page exceeds `MAX_RECEIVE_BYTES`): 10,000 keys take 10 pages, 150 ms each. */
const PREFIX_PAGE_KEYS = 10_000;

/** The watch id of etcd's answer to a progress request: it belongs to no watch. */
const PROGRESS_WATCH_ID = '-1';

/** Largest message the client accepts, in bytes (gRPC's default is 4 MiB): a page of a prefix read. */
const MAX_RECEIVE_BYTES = 64 * 1024 * 1024;

/** Attempts of a paged read whose revision is compacted while it reads before the error is passed on. */
const PAGED_READ_ATTEMPTS = 3;

/**
 * Config from one key, or every key under a prefix, of an etcd v3 cluster, through the `etcd3`
 * client.
 *
 * - `read()` is a linearizable get of the key (with `prefix`: a range of the prefix at one
 *   revision, in pages of `PREFIX_PAGE_KEYS` keys). Until the first read succeeds it retries with
 *   capped exponential backoff and jitter (an unreachable cluster or a key not yet written, no
 *   key under the prefix yet), logging each attempt, for up to `startupTimeoutMs`; afterwards
 *   one attempt bounded by `requestTimeoutMs`, rejecting with `SourceUnavailableError` when etcd
 *   cannot be reached and `SourceReadError` when the key does not exist (no key under the prefix).
 * - `watch()` watches the key (the prefix's range) from the last read's revision + 1 (no write
 *   between the read and the watch is lost). With `key`, every put is reported as a document;
 *   a delete is logged and counted and reports nothing, so the last good config keeps serving.
 *   With `prefix`, each watch response (all the events of a revision, a transaction writing 100
 *   keys included, or a catch-up batch of several revisions; responses etcd splits into
 *   fragments are put together first) changes the set, and the set is reported as one document
 *   with one `RawFragment` per key; responses arriving in the same turn of the event loop make
 *   one document. A deleted key leaves the set; a set that became empty is logged and not
 *   reported (the last good config keeps serving, as a deleted key does).
 * - A single key's document `version` is `MOD_REVISION:SHA256-PREFIX` (the mod revision alone
 *   is not unique once a cluster's history is rebuilt); `source.revision` is the mod revision.
 *   A fragment's version is the same for its key; a prefix document's version is
 *   `TrackedKeys.version()` and its `source` says `prefix`, `revision` (the store revision of
 *   the set) and `fragments` (how many).
 *
 * Keeping the watch honest, after etcd clientv3's `nextRev` bookkeeping: the source tracks the
 * revision it has seen everything up to itself and drives the watch stream itself (etcd3's
 * `Watcher` resumes from the header of its `created` response, waits forever for a revision a
 * wiped cluster never reaches, and hides why etcd cancelled it). On a lost connection it retries
 * a probe (see `#probe`) with backoff, checks the answer against what it saw (cluster ID, store
 * revision, the key's mod revision, the prefix's key count) and watches again from the resume
 * revision. A compacted resume revision, a changed cluster ID, a store revision that went
 * backwards or a watch that stopped delivering (the same probe every
 * `consistencyCheckIntervalMs`; with a prefix, also a progress request on the watch stream that
 * went unanswered for two intervals) make it resync: re-read the range at the current
 * revision, report it when it is news, watch from there.
 *
 * Concurrency: watch events, reconnects and resyncs run on one supervisor loop; `read()` may
 * run concurrently and only records what it saw. `close()` stops the loop, cancels the watch
 * stream at once (no round trip: etcd may be frozen) and closes the client, so nothing keeps
 * the process alive. Idempotent.
 */
export class EtcdSource implements ConfigSource {
  readonly kind = 'etcd';
  readonly endpoints: readonly string[];
  /** The config key (undefined with `prefix`). */
  readonly key: string | undefined;
  /** The prefix whose keys are the config's fragments (undefined with `key`). */
  readonly prefix: string | undefined;
  /** The key or the prefix: what errors name. */
  readonly #origin: string;
  /** `{key}` or `{prefix}`: what log lines name. */
  readonly #where: { key: string } | { prefix: string };
  /** The range requests and the watch cover. */
  readonly #range: Pick<IRangeRequest, 'key' | 'range_end'>;
  readonly #maxFragmentBytes: number;
  readonly #client: Etcd3;
  readonly #log: Logger;
  readonly #requestTimeoutMs: number;
  readonly #startupTimeoutMs: number;
  readonly #backoff: ExponentialBackoff<unknown>;
  readonly #checkIntervalMs: number;
  readonly #abort = new AbortController();
  /** Revision of the value (set) the daemon serves, as `served` reported it (undefined: none yet). */
  #servingRevision: number | undefined;
  readonly #stats: EtcdSourceStats = {
    revision: 0,
    fragments: 0,
    connected: false,
    reconnects: 0,
    resyncs: Object.fromEntries(RESYNC_REASONS.map((r) => [r, 0])) as Record<ResyncReason, number>,
    events: { put: 0, delete: 0 },
  };
  /** Set by the first successful read. */
  #position: Position | undefined;
  #handlers: SourceWatchHandlers | undefined;
  #supervisor: Promise<void> | undefined;
  /** Ends the running watch session (consistency check, close). */
  #endSession: ((end: SessionEnd) => void) | undefined;
  #checkTimer: NodeJS.Timeout | undefined;
  #checking = false;
  /** The previous consistency check saw a change not yet delivered, while the watch stood at `resume`. */
  #lag: { resume: number } | undefined;
  /** With `prefix`: asks etcd for a progress response on the running watch stream (unset between sessions). */
  #requestProgress: (() => void) | undefined;
  /** With `prefix`: checks since a progress request went out unanswered (undefined: none is out). */
  #progressMisses: number | undefined;
  /** With `prefix`: the set changed; it is reported once the current turn of the event loop is over. */
  #pendingReport: NodeJS.Immediate | undefined;
  /** With `prefix`: the last set reported was empty (logged once until it is not). */
  #reportedEmpty = false;
  /** Keys per page of a prefix read. */
  #pageKeys: number;
  readonly #closing = new Once(() => this.#close());

  /**
   * @throws Error when `endpoints` is empty, mixes http and https (etcd3's rule), or has a URL
   *   with credentials (`user:password@`, which every log line naming the endpoints would show;
   *   `auth` is where they go); the error does not quote them; when not exactly one of `key` and
   *   a non-empty `prefix` is given
   */
  constructor(options: EtcdSourceOptions) {
    if (options.endpoints.length === 0) throw new UsageError('EtcdSource needs at least one endpoint');
    const withCredentials = options.endpoints.findIndex((u) => URL_USERINFO.test(u));
    if (withCredentials >= 0) throw new UsageError(`EtcdSource endpoints[${withCredentials}] contains credentials (user:password@): pass them as auth`);
    if ((options.key === undefined) === (options.prefix === undefined)) throw new UsageError('EtcdSource needs exactly one of key and prefix');
    if (options.prefix === '') throw new UsageError('EtcdSource prefix must not be empty (it would watch every key of the cluster)');
    this.endpoints = [...options.endpoints];
    this.key = options.key;
    this.prefix = options.prefix;
    this.#origin = options.key ?? options.prefix!;
    this.#where = options.key !== undefined ? { key: options.key } : { prefix: options.prefix! };
    this.#range = options.key !== undefined ? { key: Buffer.from(options.key) } : prefixRange(options.prefix!);
    this.#maxFragmentBytes = options.maxFragmentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES;
    this.#pageKeys = options.pageKeys ?? PREFIX_PAGE_KEYS;
    this.#log = (options.logger ?? silentLogger()).child({ component: 'source', source: 'etcd' });
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 5000;
    this.#startupTimeoutMs = options.startupTimeoutMs ?? Number.POSITIVE_INFINITY;
    this.#backoff = new ExponentialBackoff({ initialDelay: options.backoff?.initialMs ?? 100, maxDelay: options.backoff?.maxMs ?? 5000 });
    this.#checkIntervalMs = options.consistencyCheckIntervalMs ?? 5000;
    this.#client = (options.clientFactory ?? ((o) => new Etcd3(o)))(etcdClientOptions(options));
  }

  describe(): SourceInfo {
    return { kind: 'etcd', endpoints: [...this.endpoints], ...this.#where };
  }

  /** A snapshot of the counters behind the metrics. */
  stats(): EtcdSourceStats {
    return structuredClone(this.#stats);
  }

  /** `hotconf_source_*` metrics (see `registerEtcdSourceMetrics`). */
  registerMetrics(register: Registry): void {
    registerEtcdSourceMetrics(register, () => this.#stats, { fragments: this.prefix !== undefined });
  }

  /**
   * A linearizable get of the key (a range of the prefix at one revision), as a document.
   * @throws SourceUnavailableError when etcd cannot be reached (before the first success: once
   *   `startupTimeoutMs` has passed), or the source is closed
   * @throws SourceReadError when the key does not exist, or no key is under the prefix (after the first success)
   * @throws ConfigInvalidError when the key's value is not UTF-8 text (a prefix's key makes a fragment with `error` instead)
   */
  async read(): Promise<RawDocument> {
    this.#throwIfClosed();
    const { snapshot, keys } = this.#position ? await this.#readOnce() : await this.#readAtStartup();
    if (this.prefix === undefined) {
      const kv = snapshot.kvs[0]!;
      this.#stats.revision = Number(kv.mod_revision);
      return this.#keyDocument(kv);
    }
    const revision = Number(snapshot.header.revision);
    this.#stats.revision = revision;
    this.#stats.fragments = keys.fragmentCount;
    return this.#setDocument(keys, revision);
  }

  /**
   * Watch the key (the prefix) from the last read's revision + 1 (without a read: from now).
   * Resolves once the watch is established, or once it failed and reconnecting has taken over.
   * @throws SourceUnavailableError when never read and etcd cannot be reached
   */
  async watch(handlers: SourceWatchHandlers): Promise<void> {
    if (this.#handlers) throw new Error('EtcdSource.watch() called twice');
    this.#throwIfClosed();
    if (!this.#position) {
      // Never read: watch from now on, whatever the range holds.
      const snapshot = await this.#readAll();
      this.#position ??= positionAt(snapshot, this.#track(snapshot));
    }
    this.#handlers = handlers;
    let established!: () => void;
    const ready = new Promise<void>((resolve) => (established = resolve));
    this.#supervisor = this.#supervise(established).catch((err) => this.#log.error({ err }, 'watch_supervisor_crashed'));
    this.#checkTimer = setInterval(() => void this.#checkConsistency(), this.#checkIntervalMs);
    this.#checkTimer.unref();
    await ready;
  }

  /** Stop watching and close the client. Idempotent: every caller gets the same completion. */
  close(): Promise<void> {
    return this.#closing.call();
  }

  async #close(): Promise<void> {
    this.#abort.abort();
    clearInterval(this.#checkTimer);
    clearImmediate(this.#pendingReport);
    this.#endSession?.({ kind: 'closed' });
    await this.#supervisor;
    this.#client.close();
    this.#stats.connected = false;
  }

  #throwIfClosed(): void {
    if (this.#abort.signal.aborted) throw new SourceUnavailableError(this.#origin, 'the etcd source is closed');
  }

  // ---- reads ------------------------------------------------------------------------------

  /** Retry until the key is read (until a key is under the prefix): etcd unreachable or nothing written yet. */
  async #readAtStartup(): Promise<{ snapshot: Snapshot; keys: TrackedKeys }> {
    const started = Date.now();
    let backoff: IBackoff<unknown> | undefined;
    for (let attempt = 1; ; attempt += 1) {
      let reason: Error;
      try {
        return await this.#readOnce();
      } catch (error) {
        this.#throwIfClosed();
        reason = error as Error;
      }
      backoff = this.#nextBackoff(backoff);
      const elapsedMs = Date.now() - started;
      if (elapsedMs + backoff.duration > this.#startupTimeoutMs) {
        throw new SourceUnavailableError(
          this.#origin,
          `no config from etcd at ${this.endpoints.join(',')} after ${attempt} attempt(s) in ${(elapsedMs / 1000).toFixed(1)} s (startup timeout ${this.#startupTimeoutMs / 1000} s): ${reason.message}`,
        );
      }
      this.#log.warn(
        { attempt, delay_ms: Math.round(backoff.duration), endpoints: this.endpoints, ...this.#where, error: reason.message },
        'etcd_startup_retry',
      );
      await this.#sleep(backoff.duration);
    }
  }

  /** One read of the range and its keys; records the position when none is known yet. */
  async #readOnce(): Promise<{ snapshot: Snapshot; keys: TrackedKeys }> {
    const snapshot = await this.#readAll();
    if (snapshot.kvs.length === 0) {
      const what = this.prefix === undefined ? 'key does not exist' : 'no key under the prefix';
      throw new SourceReadError(this.#origin, `${what} in etcd at ${this.endpoints.join(',')} (revision ${snapshot.header.revision})`);
    }
    const keys = this.#track(snapshot);
    this.#position ??= positionAt(snapshot, keys);
    return { snapshot, keys };
  }

  /**
   * The key, or every key under the prefix, at one revision: the prefix in pages of
   * `#pageKeys` keys, each page after the first at the first one's revision (as Kubernetes'
   * paged lists). A revision compacted meanwhile starts the read over; a page over gRPC's
   * message size limit is asked for again with half as many keys.
   * @throws SourceUnavailableError naming the endpoints and the key (prefix)
   */
  async #readAll(): Promise<Snapshot> {
    if (this.prefix === undefined) return this.#rangeRequest(this.#range);
    for (let attempt = 1; ; attempt += 1) {
      try {
        const first = await this.#page({});
        const kvs = [...first.kvs];
        let more = first.more;
        while (more) {
          const after = Buffer.concat([kvs.at(-1)!.key, Buffer.from([0])]);
          const page = await this.#page({ key: after, revision: first.header.revision });
          kvs.push(...page.kvs);
          more = page.more;
        }
        return { header: first.header, kvs };
      } catch (error) {
        if (attempt >= PAGED_READ_ATTEMPTS || !/compacted/.test(errorMessage((error as Error).cause))) throw error;
      }
    }
  }

  /** One page of a prefix read; halves the page size while etcd's answer is over gRPC's message limit. */
  async #page(request: Pick<IRangeRequest, 'key' | 'revision'>): Promise<IRangeResponse> {
    for (;;) {
      try {
        return await this.#rangeRequest({ ...this.#range, ...request, limit: this.#pageKeys });
      } catch (error) {
        if (!((error as Error).cause instanceof GRPCResourceExhastedError) || this.#pageKeys === 1) throw error;
        this.#pageKeys = Math.max(1, Math.floor(this.#pageKeys / 2));
        this.#log.info({ ...this.#where, page_keys: this.#pageKeys }, 'etcd_page_halved');
      }
    }
  }

  /**
   * What the consistency checks compare. The single key: its count (0 or 1) and mod revision,
   * keys only. A prefix: the count of its keys only (`count_only`: etcd walks its index, reads no
   * value; 30 to 80 ms at 100,000 keys, where a range sorted by mod revision to find the newest
   * key reads every value, 600 ms); that the watch still delivers changes to existing keys is
   * checked with progress requests instead (see `#checkConsistency`).
   */
  #probe(): Promise<IRangeResponse> {
    if (this.prefix !== undefined) return this.#rangeRequest({ ...this.#range, count_only: true });
    return this.#rangeRequest({ ...this.#range, keys_only: true, sort_order: 'Descend', sort_target: 'Mod', limit: 1 });
  }

  /**
   * A linearizable range request, bounded by `requestTimeoutMs`.
   * @throws SourceUnavailableError naming the endpoints and the key (prefix)
   */
  async #rangeRequest(request: IRangeRequest): Promise<IRangeResponse> {
    try {
      return await this.#client.kv.range(request, { deadline: Date.now() + this.#requestTimeoutMs });
    } catch (error) {
      this.#throwIfClosed();
      throw new SourceUnavailableError(this.#origin, `etcd at ${this.endpoints.join(',')} unreachable: ${errorMessage(error)}`, { cause: error });
    }
  }

  /** The keys of a read (with `prefix`, each value a fragment). */
  #track(snapshot: Snapshot): TrackedKeys {
    return TrackedKeys.of(snapshot.kvs.map((kv): KeyValue => [kv.key.toString('utf8'), Number(kv.mod_revision), this.#fragment(kv)]));
  }

  /**
   * With `prefix`: the key's value as a fragment; undefined for the single key. A value over
   * `maxFragmentBytes` or not UTF-8 makes a fragment with `error` (why) and no text, logged
   * (`fragment_unusable`): the reloader refuses it naming the key and keeps its last good version.
   */
  #fragment(kv: IKeyValue): RawFragment | undefined {
    if (this.prefix === undefined) return undefined;
    const name = kv.key.toString('utf8');
    const version = valueVersion(kv);
    let error: string;
    if (kv.value.length > this.#maxFragmentBytes) {
      error = `value is ${kv.value.length} bytes; the limit is ${this.#maxFragmentBytes} bytes (--max-document-bytes)`;
    } else {
      try {
        return { name, text: decodeDocument(kv.value, name), version };
      } catch (caught) {
        if (!(caught instanceof ConfigInvalidError)) throw caught;
        error = caught.issues.map((i) => i.message).join('; ');
      }
    }
    this.#log.warn({ prefix: this.prefix, key: name, mod_revision: Number(kv.mod_revision), error }, 'fragment_unusable');
    return { name, text: '', version, error };
  }

  /** @throws ConfigInvalidError when the value is not UTF-8 text (see `decodeDocument`) */
  #keyDocument(kv: IKeyValue): RawDocument {
    const revision = Number(kv.mod_revision);
    return { text: decodeDocument(kv.value, this.#origin), version: valueVersion(kv), source: { ...this.describe(), revision } };
  }

  /** A prefix's set as a document at the store revision `revision`. */
  #setDocument(keys: TrackedKeys, revision: number): RawDocument {
    return { text: '', version: keys.version(), fragments: keys.fragments(), source: { ...this.describe(), revision, fragments: keys.fragmentCount } };
  }

  /** The delay before the next attempt: the policy's first one, or the one after `previous`. */
  #nextBackoff(previous: IBackoff<unknown> | undefined): IBackoff<unknown> {
    return previous ? previous.next(undefined) : this.#backoff.next();
  }

  /** The single key's new value. */
  #report(kv: IKeyValue): void {
    this.#stats.revision = Number(kv.mod_revision);
    let doc: RawDocument;
    try {
      doc = this.#keyDocument(kv);
    } catch (error) {
      this.#handlers?.onError(error as Error);
      return;
    }
    this.#handlers?.onDocument(doc);
  }

  /** The prefix's set changed: report it once this turn of the event loop is over (responses arriving together make one document). */
  #reportSetSoon(): void {
    this.#pendingReport ??= setImmediate(() => {
      this.#pendingReport = undefined;
      this.#reportSet();
    });
  }

  /** Report the prefix's current set; an empty one is logged (once) and not reported. */
  #reportSet(): void {
    const position = this.#position!;
    const { keys } = position;
    const revision = position.resume - 1;
    this.#stats.revision = revision;
    this.#stats.fragments = keys.fragmentCount;
    if (keys.fragmentCount === 0) {
      if (!this.#reportedEmpty) this.#log.warn({ prefix: this.prefix, revision, keys: keys.size, serving_revision: this.#servingRevision }, 'prefix_empty');
      this.#reportedEmpty = true;
      return;
    }
    this.#reportedEmpty = false;
    this.#handlers?.onDocument(this.#setDocument(keys, revision));
  }

  /**
   * A key left the range. The single key's delete is a warning naming `serving_revision`: the
   * revision whose value the daemon serves (reported through `served`), not the newest one
   * delivered (`last_revision`), which the reloader may have rejected. A prefix's is a change.
   */
  #deleted(key: string, revision: number, via: 'watch' | 'resync'): void {
    this.#stats.events.delete += 1;
    if (this.prefix !== undefined) this.#log.info({ prefix: this.prefix, key, revision, via }, 'fragment_deleted');
    else this.#log.warn({ key, revision, via, serving_revision: this.#servingRevision, last_revision: this.#stats.revision }, 'key_deleted');
  }

  /** The reloader serves `doc` (applied, or unchanged from what served): its revision is the serving one. */
  served(doc: RawDocument): void {
    if (typeof doc.source.revision === 'number') this.#servingRevision = doc.source.revision;
  }

  // ---- watching ---------------------------------------------------------------------------

  /**
   * The supervisor loop: watch; when the watch ends, probe the range until etcd answers, resync
   * if the answer contradicts what was seen, watch again.
   */
  async #supervise(established: () => void): Promise<void> {
    let end: Exclude<SessionEnd, { kind: 'closed' }> | undefined;
    let outage = false;
    // Sessions that end before etcd confirmed the watch (a refused create) back off too.
    let unconfirmed: IBackoff<unknown> | undefined;
    while (!this.#abort.signal.aborted) {
      if (end && unconfirmed) await this.#sleep(unconfirmed.duration).catch(() => undefined);
      if (end) {
        const recovered = await this.#recover(end).catch((error) => {
          if (!this.#abort.signal.aborted) this.#log.error({ err: error }, 'watch_recovery_failed');
        });
        if (recovered === undefined) return;
      }
      let confirmed = false;
      const result = await this.#session(() => {
        confirmed = true;
        established();
        if (outage) {
          this.#stats.reconnects += 1;
          this.#log.info({ ...this.#where, revision: this.#position!.resume - 1, reconnects: this.#stats.reconnects }, 'watch_resumed');
        } else {
          this.#log.info({ ...this.#where, endpoints: this.endpoints, from_revision: this.#position!.resume }, 'watch_started');
        }
        outage = false;
      });
      if (result.kind === 'closed') return;
      end = result;
      unconfirmed = confirmed ? undefined : this.#nextBackoff(unconfirmed);
      if (end.kind === 'disconnected') {
        if (!outage) {
          this.#log.warn({ ...this.#where, error: end.error.message }, 'watch_disconnected');
          this.#handlers?.onError(
            new SourceUnavailableError(this.#origin, `lost the watch on etcd at ${this.endpoints.join(',')}: ${end.error.message}; reconnecting`),
          );
        }
        outage = true;
      }
      // The caller of watch() must not wait for a cluster that is down: the loop carries on.
      established();
    }
  }

  /**
   * After a session ended: probe the range (retrying with backoff until etcd answers), decide
   * whether the position still holds, resync if not. Resolves true when watching may resume,
   * undefined when closed.
   */
  async #recover(end: Exclude<SessionEnd, { kind: 'closed' }>): Promise<true | undefined> {
    const ended: ResyncReason | undefined = end.kind === 'resync' ? end.reason : end.kind === 'canceled' ? 'watch_canceled' : undefined;
    let backoff: IBackoff<unknown> | undefined;
    for (let attempt = 1; !this.#abort.signal.aborted; attempt += 1) {
      try {
        const before = { ...this.#position! };
        const reason = ended ?? this.#contradiction(await this.#probe(), before);
        if (reason) await this.#resync(reason);
        return true;
      } catch (error) {
        if (this.#abort.signal.aborted) return undefined;
        backoff = this.#nextBackoff(backoff);
        this.#log.warn(
          { attempt, delay_ms: Math.round(backoff.duration), endpoints: this.endpoints, ...this.#where, error: errorMessage(error) },
          'etcd_reconnect_retry',
        );
        await this.#sleep(backoff.duration).catch(() => undefined);
      }
    }
    return undefined;
  }

  /**
   * Compare a linearizable probe (see `#probe`) with the position held when it was requested.
   * Anything the watch had applied then was committed before the probe, so the probe must be at
   * least as new; and when its newest key is not newer than that position, nothing was put in
   * the range since, so that key must be at the mod revision the position knows, and the count
   * (only deletes since) can only have fallen, or stayed with the same newest key. Skipped while
   * the watch applied events meanwhile: the next check compares.
   */
  #contradiction(probe: IRangeResponse, before: Position): ResyncReason | undefined {
    const reason = headerContradiction(probe.header, before);
    if (reason) return reason;
    const { keys, resume } = this.#position!;
    const top = probe.kvs[0];
    if (!top || keys !== before.keys || resume !== before.resume) return undefined;
    const mod = Number(top.mod_revision);
    if (mod > resume - 1) return undefined;
    const count = Number(probe.count);
    if (keys.modOf(top.key.toString('utf8')) !== mod || count > keys.size || (count === keys.size && mod !== keys.maxMod())) return 'history_diverged';
    return undefined;
  }

  /** Re-read the range at the current revision, take it as the new position, and report it when it is news. */
  async #resync(reason: ResyncReason): Promise<void> {
    const snapshot = await this.#readAll();
    const before = this.#position!;
    const keys = this.#track(snapshot);
    this.#position = positionAt(snapshot, keys);
    const kv = this.prefix === undefined ? snapshot.kvs[0] : undefined;
    this.#stats.resyncs[reason] += 1;
    this.#log.warn(
      {
        reason,
        ...this.#where,
        from_revision: before.resume - 1,
        to_revision: Number(snapshot.header.revision),
        cluster_id: snapshot.header.cluster_id,
        ...(this.prefix === undefined ? { mod_revision: Number(kv?.mod_revision ?? 0) } : { keys: keys.size }),
      },
      'resync',
    );
    this.#lag = undefined;
    for (const key of before.keys.keys()) if (!keys.has(key)) this.#deleted(key, Number(snapshot.header.revision), 'resync');
    // Same history (compaction, stall): unchanged mod revisions are the values already delivered.
    const sameHistory = reason === 'compacted' || reason === 'watch_stalled' || reason === 'watch_canceled';
    if (this.prefix !== undefined) {
      if (!sameHistory || keys.version() !== before.keys.version()) this.#reportSetSoon();
    } else if (kv && (!sameHistory || Number(kv.mod_revision) !== before.keys.modOf(this.key!))) {
      this.#report(kv);
    }
  }

  /**
   * One watch stream from the resume revision, until it is lost, cancelled by etcd, or ended by
   * a consistency check or `close()`.
   *
   * This uses etcd3's typed `watchClient` stream rather than its `Watcher`: the Watcher hides
   * `compact_revision` behind a bare "Watcher canceled" error, resumes on its own from the
   * header of its `created` response, and cannot be torn down while etcd does not answer (its
   * cancel waits for etcd's confirmation, and a closed client leaves the stream open). Here a
   * session owns its stream and `cancel()`s it at once when it ends.
   */
  async #session(onConnected: () => void): Promise<SessionEnd> {
    const position = this.#position!;
    let stream: IDuplexStream<IWatchRequest, IWatchResponse>;
    try {
      stream = await this.#client.watchClient.watch();
    } catch (error) {
      return { kind: 'disconnected', error: error as Error };
    }
    if (this.#abort.signal.aborted) {
      stream.on('error', () => undefined);
      stream.cancel();
      return { kind: 'closed' };
    }
    return new Promise<SessionEnd>((resolve) => {
      let ended = false;
      /** Events of a response etcd split into fragments, until its last fragment. */
      let partial: IEvent[] = [];
      const end = (result: SessionEnd) => {
        if (ended) return;
        ended = true;
        clearTimeout(connectTimer);
        this.#endSession = undefined;
        this.#requestProgress = undefined;
        this.#stats.connected = false;
        // The cancel surfaces as a CANCELLED error: the listener below swallows it once ended.
        stream.cancel();
        resolve(result);
      };
      this.#endSession = end;
      this.#progressMisses = undefined;
      this.#requestProgress = this.prefix === undefined ? undefined : () => stream.write({ progress_request: {} });
      const connectTimer = setTimeout(
        () => end({ kind: 'disconnected', error: new Error(`watch not established within ${this.#requestTimeoutMs} ms`) }),
        this.#requestTimeoutMs,
      );
      connectTimer.unref();
      stream.on('data', (res: IWatchResponse) => {
        if (ended) return;
        try {
          if (res.fragment) {
            partial.push(...res.events);
            return;
          }
          const events = partial.length > 0 ? [...partial, ...res.events] : res.events;
          partial = [];
          this.#onStreamResponse(res, events, end, () => {
            clearTimeout(connectTimer);
            onConnected();
          });
        } catch (error) {
          // Thrown inside grpc-js's stream it would be an uncaught exception: start over instead.
          this.#log.error({ err: error }, 'watch_response_failed');
          end({ kind: 'disconnected', error: error as Error });
        }
      });
      stream.on('error', (error: Error) => end({ kind: 'disconnected', error }));
      stream.on('end', () => end({ kind: 'disconnected', error: new Error('etcd ended the watch stream') }));
      stream.write({ create_request: { ...this.#range, start_revision: String(position.resume), progress_notify: true, fragment: true } });
    });
  }

  /** Dispatch one (reassembled) response of the watch stream: cancel, contradiction, created, or events. */
  #onStreamResponse(res: IWatchResponse, events: IEvent[], end: (result: SessionEnd) => void, connected: () => void): void {
    if (res.canceled) {
      // etcd cancels a watch whose start revision was compacted, right after creating it.
      if (res.compact_revision !== '0' && res.compact_revision !== '') end({ kind: 'resync', reason: 'compacted' });
      else end({ kind: 'canceled', error: new Error(`etcd cancelled the watch: ${res.cancel_reason || 'no reason given'}`) });
      return;
    }
    const reason = headerContradiction(res.header, this.#position!);
    if (reason) {
      end({ kind: 'resync', reason });
      return;
    }
    if (res.created) {
      this.#stats.connected = true;
      connected();
      return;
    }
    if (res.watch_id === PROGRESS_WATCH_ID) {
      // The answer to a progress request: the stream delivers. It does not say that this watch
      // has sent everything up to its revision (etcd 3.4 answers at once, even while the watch
      // is still catching up), so the resume revision stays.
      this.#progressMisses = undefined;
      return;
    }
    this.#onWatchEvents(res.header, events);
  }

  #onWatchEvents(header: IResponseHeader, events: IEvent[]): void {
    const position = this.#position!;
    const last = events.at(-1);
    if (!last) {
      // A progress notification: nothing in the range up to the header revision.
      position.resume = Math.max(position.resume, Number(header.revision) + 1);
      return;
    }
    // Single key: only the newest value matters, a batch reports its last put; every delete in
    // it is still logged and counted, a trailing one as well as one a later put in the batch undid.
    let lastPut: IKeyValue | undefined;
    let changed = false;
    for (const event of events) {
      const key = event.kv.key.toString('utf8');
      const mod = Number(event.kv.mod_revision);
      if (event.type === 'Put') {
        this.#stats.events.put += 1;
        lastPut = event.kv;
        position.keys.put(key, mod, this.#fragment(event.kv));
        changed = true;
      } else {
        changed = position.keys.delete(key) || changed;
        this.#deleted(key, mod, 'watch');
      }
    }
    // After clientv3: resume after the last event, not the header (a catch-up batch may be partial).
    position.resume = Number(last.kv.mod_revision) + 1;
    if (this.prefix !== undefined) {
      if (changed) this.#reportSetSoon();
    } else if (lastPut) {
      this.#report(lastPut);
    }
  }

  /**
   * Every `consistencyCheckIntervalMs` while watching: a probe of the range. A contradiction
   * (see `#contradiction`) or a change the watch has not delivered within a whole interval ends
   * the session with a resync; a failed probe ends it as disconnected (the recovery retries
   * until etcd answers).
   */
  async #checkConsistency(): Promise<void> {
    const endSession = this.#endSession;
    if (!endSession || !this.#stats.connected || this.#checking) return;
    this.#checking = true;
    try {
      const before = { ...this.#position! };
      let probe: IRangeResponse;
      try {
        probe = await this.#probe();
      } catch (error) {
        if (this.#endSession === endSession) endSession({ kind: 'disconnected', error: error as Error });
        return;
      }
      if (this.#endSession !== endSession) return;
      const reason = this.#contradiction(probe, before);
      if (reason) return endSession({ kind: 'resync', reason });
      // Stalled: the range had changed at the previous check and the watch delivered nothing
      // since, or (a prefix) a progress request went unanswered for two checks.
      const top = probe.kvs[0];
      const lagging = Number(probe.count) !== before.keys.size || (top !== undefined && Number(top.mod_revision) > before.resume - 1);
      if (lagging && this.#lag?.resume === before.resume) return endSession({ kind: 'resync', reason: 'watch_stalled' });
      this.#lag = lagging ? { resume: before.resume } : undefined;
      if (this.#progressMisses !== undefined) {
        this.#progressMisses += 1;
        if (this.#progressMisses >= 2) return endSession({ kind: 'resync', reason: 'watch_stalled' });
      } else if (this.#requestProgress) {
        this.#progressMisses = 0;
        this.#requestProgress();
      }
    } finally {
      this.#checking = false;
    }
  }

  /**
   * Sleep `ms`. The timer is ref'd: a start may be waiting on it.
   * @throws SourceUnavailableError once the source is closed (the sleep is cut short), like
   *   every other path that finds it closed, so a read waiting at start rejects as `read()` says
   */
  async #sleep(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.#abort.signal }).catch(() => this.#throwIfClosed());
  }
}

/** `MOD_REVISION:SHA256-PREFIX` of a key's value: its document's (fragment's) version. */
function valueVersion(kv: IKeyValue): string {
  return `${kv.mod_revision}:${hash('sha256', kv.value, 'hex').slice(0, 16)}`;
}

/**
 * The range of every key starting with `prefix`: `range_end` is the prefix with its last byte
 * below 0xff incremented (trailing 0xff bytes dropped), as etcd clientv3's `GetPrefixRangeEnd`;
 * `\0` (to the end of the keyspace) when every byte is 0xff.
 */
export function prefixRange(prefix: string): { key: Buffer; range_end: Buffer } {
  const key = Buffer.from(prefix);
  for (let i = key.length - 1; i >= 0; i -= 1) {
    if (key[i]! < 0xff) {
      const end = Buffer.from(key.subarray(0, i + 1));
      end[i] = end[i]! + 1;
      return { key, range_end: end };
    }
  }
  return { key, range_end: Buffer.from([0]) };
}

/** What a read establishes: every change of the range up to its revision is known, its keys are `keys`. */
function positionAt(snapshot: Snapshot, keys: TrackedKeys): Position {
  return { resume: Number(snapshot.header.revision) + 1, keys, clusterId: snapshot.header.cluster_id };
}

/** A header from another cluster, or older than what `position` has seen (any answer must be at least as new). */
function headerContradiction(header: IResponseHeader, position: Position): ResyncReason | undefined {
  if (header.cluster_id !== position.clusterId) return 'cluster_id_changed';
  if (Number(header.revision) < position.resume - 1) return 'revision_backwards';
  return undefined;
}

/**
 * The scheme and user-info of a URL (`http://user:password@`, the scheme in group 1); matches
 * text that is not a valid URL too. An endpoint must not have user-info: it would be quoted
 * wherever the endpoints are (logs, errors, `/config`).
 */
export const URL_USERINFO = /^([^:/?#]+:\/\/)[^/?#]*@/;

/**
 * etcd3 client options for a source or a one-shot command (`hotconf put`): the hosts, TLS and
 * auth, keepalive pings so a dead connection is noticed, and fault handling that fails fast. The
 * default per-host circuit breaker would refuse every call for 5 s after three failures, i.e.
 * right after etcd comes back; callers retry with their own backoff instead.
 */
export function etcdClientOptions(options: Pick<EtcdSourceOptions, 'endpoints' | 'tls' | 'auth'>): IOptions {
  const { tls, auth } = options;
  return {
    hosts: [...options.endpoints],
    ...(tls
      ? {
          // grpc-js takes a missing root certificate as "use the system's roots".
          credentials: { rootCertificate: tls.ca as Buffer, ...(tls.key ? { privateKey: tls.key } : {}), ...(tls.cert ? { certChain: tls.cert } : {}) },
        }
      : {}),
    ...(auth ? { auth: { username: auth.username, password: auth.password } } : {}),
    grpcOptions: { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5000, 'grpc.max_receive_message_length': MAX_RECEIVE_BYTES },
    faultHandling: {
      host: () => noop,
      // With several endpoints, a recoverable failure tries the next one.
      global: options.endpoints.length > 1 ? retry(handleWhen(isRecoverableError), { maxAttempts: options.endpoints.length - 1 }) : noop,
    },
  };
}
