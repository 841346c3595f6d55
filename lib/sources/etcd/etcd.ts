import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExponentialBackoff, handleWhen, type IBackoff, noop, retry } from 'cockatiel';
import {
  Etcd3,
  type IDuplexStream,
  type IKeyValue,
  type IOptions,
  type IRangeResponse,
  type IResponseHeader,
  type IWatchRequest,
  type IWatchResponse,
  isRecoverableError,
} from 'etcd3';
import type { Registry } from 'prom-client';
import { decodeDocument } from '../../config/decode.js';
import { errorMessage, SourceReadError, SourceUnavailableError, UsageError } from '../../core/errors.js';
import { type Logger, silentLogger } from '../../core/log.js';
import { Once } from '../../core/once.js';
import type { ConfigSource, RawDocument, SourceInfo, SourceWatchHandlers } from '../source.js';
import { registerEtcdSourceMetrics } from './metrics.js';
import { type EtcdSourceStats, RESYNC_REASONS, type ResyncReason } from './stats.js';

export interface EtcdSourceOptions {
  /** Client URLs, `http://host:port` or `https://host:port` (not mixed). */
  endpoints: string[];
  /** The key holding the config document. */
  key: string;
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
  /** Period of the consistency check while watching, in ms. Default 5000. */
  consistencyCheckIntervalMs?: number;
  /** Builds the etcd3 client (tests wrap it to inject faults). Default `new Etcd3(options)`. */
  clientFactory?: (options: IOptions) => Etcd3;
}

/** How one watch session ended. */
type SessionEnd = { kind: 'disconnected'; error: Error } | { kind: 'canceled'; error: Error } | { kind: 'resync'; reason: ResyncReason } | { kind: 'closed' };

/** What the source knows about the key: the watch resumes from `resume`. */
interface Position {
  /** Next revision to watch from: every change of the key below it has been delivered. */
  resume: number;
  /** Mod revision of the key as of `resume - 1` (0: absent or deleted). */
  mod: number;
  clusterId: string;
}

/**
 * Config from one key of an etcd v3 cluster, through the `etcd3` client.
 *
 * - `read()` is a linearizable get of the key. Until the first read succeeds it retries with
 *   capped exponential backoff and jitter (an unreachable cluster or a key not yet written),
 *   logging each attempt, for up to `startupTimeoutMs`; afterwards one attempt bounded by
 *   `requestTimeoutMs`, rejecting with `SourceUnavailableError` when etcd cannot be reached
 *   and `SourceReadError` when the key does not exist.
 * - `watch()` watches the key from the last read's revision + 1 (no write between the read and
 *   the watch is lost) and reports every put as a document; a delete is logged and counted
 *   and reports nothing, so the last good config keeps serving.
 * - Each document's `version` is `MOD_REVISION:SHA256-PREFIX`: the mod revision alone is not
 *   unique once a cluster's history is rebuilt; `source.revision` is the mod revision.
 *
 * Keeping the watch honest, after etcd clientv3's `nextRev` bookkeeping: the source tracks the
 * revision it has seen everything up to itself and drives the watch stream itself (etcd3's
 * `Watcher` resumes from the header of its `created` response, waits forever for a revision a
 * wiped cluster never reaches, and hides why etcd cancelled it). On a lost connection it retries
 * a get with backoff, checks the answer against what it saw (cluster ID, store revision, the
 * key's mod revision) and watches again from the resume revision. A compacted resume revision,
 * a changed cluster ID, a store revision that went backwards or a watch that stopped delivering
 * (a keys-only get of the key every `consistencyCheckIntervalMs`) make it resync: re-read the
 * key at the current revision, report it when it is news, watch from there.
 *
 * Concurrency: watch events, reconnects and resyncs run on one supervisor loop; `read()` may
 * run concurrently and only records what it saw. `close()` stops the loop, cancels the watch
 * stream at once (no round trip: etcd may be frozen) and closes the client, so nothing keeps
 * the process alive. Idempotent.
 */
export class EtcdSource implements ConfigSource {
  readonly kind = 'etcd';
  readonly endpoints: readonly string[];
  readonly key: string;
  readonly #client: Etcd3;
  readonly #log: Logger;
  readonly #requestTimeoutMs: number;
  readonly #startupTimeoutMs: number;
  readonly #backoff: ExponentialBackoff<unknown>;
  readonly #checkIntervalMs: number;
  readonly #abort = new AbortController();
  /** Mod revision of the value the daemon serves, as `served` reported it (undefined: none yet). */
  #servingRevision: number | undefined;
  readonly #stats: EtcdSourceStats = {
    revision: 0,
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
  readonly #closing = new Once(() => this.#close());

  /**
   * @throws Error when `endpoints` is empty, mixes http and https (etcd3's rule), or has a URL
   *   with credentials (`user:password@`, which every log line naming the endpoints would show;
   *   `auth` is where they go); the error does not quote them
   */
  constructor(options: EtcdSourceOptions) {
    if (options.endpoints.length === 0) throw new UsageError('EtcdSource needs at least one endpoint');
    const withCredentials = options.endpoints.findIndex((u) => URL_USERINFO.test(u));
    if (withCredentials >= 0) throw new UsageError(`EtcdSource endpoints[${withCredentials}] contains credentials (user:password@): pass them as auth`);
    this.endpoints = [...options.endpoints];
    this.key = options.key;
    this.#log = (options.logger ?? silentLogger()).child({ component: 'source', source: 'etcd' });
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 5000;
    this.#startupTimeoutMs = options.startupTimeoutMs ?? Number.POSITIVE_INFINITY;
    this.#backoff = new ExponentialBackoff({ initialDelay: options.backoff?.initialMs ?? 100, maxDelay: options.backoff?.maxMs ?? 5000 });
    this.#checkIntervalMs = options.consistencyCheckIntervalMs ?? 5000;
    this.#client = (options.clientFactory ?? ((o) => new Etcd3(o)))(etcdClientOptions(options));
  }

  describe(): SourceInfo {
    return { kind: 'etcd', endpoints: [...this.endpoints], key: this.key };
  }

  /** A snapshot of the counters behind the metrics. */
  stats(): EtcdSourceStats {
    return structuredClone(this.#stats);
  }

  /** `hotconf_source_*` metrics (see `registerEtcdSourceMetrics`). */
  registerMetrics(register: Registry): void {
    registerEtcdSourceMetrics(register, () => this.#stats);
  }

  /**
   * A linearizable get of the key, as a document.
   * @throws SourceUnavailableError when etcd cannot be reached (before the first success: once
   *   `startupTimeoutMs` has passed), or the source is closed
   * @throws SourceReadError when the key does not exist (after the first success)
   */
  async read(): Promise<RawDocument> {
    this.#throwIfClosed();
    const kv = this.#position ? await this.#readOnce() : await this.#readAtStartup();
    this.#stats.revision = Number(kv.mod_revision);
    return this.#document(kv);
  }

  /**
   * Watch the key from the last read's revision + 1 (without a read: from now). Resolves once
   * the watch is established, or once it failed and reconnecting has taken over.
   * @throws SourceUnavailableError when never read and etcd cannot be reached
   */
  async watch(handlers: SourceWatchHandlers): Promise<void> {
    if (this.#handlers) throw new Error('EtcdSource.watch() called twice');
    this.#throwIfClosed();
    if (!this.#position) {
      // Never read: watch from now on, whatever the key holds.
      const res = await this.#range();
      this.#position ??= positionAt(res);
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
    this.#endSession?.({ kind: 'closed' });
    await this.#supervisor;
    this.#client.close();
    this.#stats.connected = false;
  }

  #throwIfClosed(): void {
    if (this.#abort.signal.aborted) throw new SourceUnavailableError(this.key, 'the etcd source is closed');
  }

  // ---- reads ------------------------------------------------------------------------------

  /** Retry until the key is read: etcd unreachable or the key not written yet. */
  async #readAtStartup(): Promise<IKeyValue> {
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
          this.key,
          `no config from etcd at ${this.endpoints.join(',')} after ${attempt} attempt(s) in ${(elapsedMs / 1000).toFixed(1)} s (startup timeout ${this.#startupTimeoutMs / 1000} s): ${reason.message}`,
        );
      }
      this.#log.warn(
        { attempt, delay_ms: Math.round(backoff.duration), endpoints: this.endpoints, key: this.key, error: reason.message },
        'etcd_startup_retry',
      );
      await this.#sleep(backoff.duration);
    }
  }

  /** One get of the key's value; records the position when none is known yet. */
  async #readOnce(): Promise<IKeyValue> {
    const res = await this.#range();
    const kv = res.kvs[0];
    if (!kv) throw new SourceReadError(this.key, `key does not exist in etcd at ${this.endpoints.join(',')} (revision ${res.header.revision})`);
    this.#position ??= positionAt(res);
    return kv;
  }

  /**
   * A linearizable range on the key, bounded by `requestTimeoutMs`.
   * @throws SourceUnavailableError naming the endpoints and key
   */
  async #range(options: { keysOnly?: boolean } = {}): Promise<IRangeResponse> {
    try {
      return await this.#client.kv.range(
        { key: Buffer.from(this.key), keys_only: options.keysOnly ?? false },
        { deadline: Date.now() + this.#requestTimeoutMs },
      );
    } catch (error) {
      this.#throwIfClosed();
      throw new SourceUnavailableError(this.key, `etcd at ${this.endpoints.join(',')} unreachable: ${errorMessage(error)}`, { cause: error });
    }
  }

  /** @throws ConfigInvalidError when the value is not UTF-8 text (see `decodeDocument`) */
  #document(kv: IKeyValue): RawDocument {
    const revision = Number(kv.mod_revision);
    const digest = createHash('sha256').update(kv.value).digest('hex').slice(0, 16);
    return { text: decodeDocument(kv.value, this.key), version: `${revision}:${digest}`, source: { ...this.describe(), revision } };
  }

  /** The delay before the next attempt: the policy's first one, or the one after `previous`. */
  #nextBackoff(previous: IBackoff<unknown> | undefined): IBackoff<unknown> {
    return previous ? previous.next(undefined) : this.#backoff.next();
  }

  #report(kv: IKeyValue): void {
    this.#stats.revision = Number(kv.mod_revision);
    let doc: RawDocument;
    try {
      doc = this.#document(kv);
    } catch (error) {
      this.#handlers?.onError(error as Error);
      return;
    }
    this.#handlers?.onDocument(doc);
  }

  /**
   * `serving_revision`: the revision whose value the daemon serves (reported through `served`),
   * not the newest one delivered (`last_revision`), which the reloader may have rejected.
   */
  #deleted(revision: number, via: 'watch' | 'resync'): void {
    this.#stats.events.delete += 1;
    this.#log.warn({ key: this.key, revision, via, serving_revision: this.#servingRevision, last_revision: this.#stats.revision }, 'key_deleted');
  }

  /** The reloader serves `doc` (applied, or unchanged from what served): its revision is the serving one. */
  served(doc: RawDocument): void {
    if (typeof doc.source.revision === 'number') this.#servingRevision = doc.source.revision;
  }

  // ---- watching ---------------------------------------------------------------------------

  /**
   * The supervisor loop: watch; when the watch ends, get the key until etcd answers, resync if
   * the answer contradicts what was seen, watch again.
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
          this.#log.info({ key: this.key, revision: this.#position!.resume - 1, reconnects: this.#stats.reconnects }, 'watch_resumed');
        } else {
          this.#log.info({ key: this.key, endpoints: this.endpoints, from_revision: this.#position!.resume }, 'watch_started');
        }
        outage = false;
      });
      if (result.kind === 'closed') return;
      end = result;
      unconfirmed = confirmed ? undefined : this.#nextBackoff(unconfirmed);
      if (end.kind === 'disconnected') {
        if (!outage) {
          this.#log.warn({ key: this.key, error: end.error.message }, 'watch_disconnected');
          this.#handlers?.onError(
            new SourceUnavailableError(this.key, `lost the watch on etcd at ${this.endpoints.join(',')}: ${end.error.message}; reconnecting`),
          );
        }
        outage = true;
      }
      // The caller of watch() must not wait for a cluster that is down: the loop carries on.
      established();
    }
  }

  /**
   * After a session ended: get the key (retrying with backoff until etcd answers), decide
   * whether the position still holds, resync if not. Resolves true when watching may resume,
   * undefined when closed.
   */
  async #recover(end: Exclude<SessionEnd, { kind: 'closed' }>): Promise<true | undefined> {
    const ended: ResyncReason | undefined = end.kind === 'resync' ? end.reason : end.kind === 'canceled' ? 'watch_canceled' : undefined;
    let backoff: IBackoff<unknown> | undefined;
    for (let attempt = 1; !this.#abort.signal.aborted; attempt += 1) {
      try {
        const position = this.#position!;
        const res = await this.#range();
        const reason = ended ?? this.#contradiction(res, position);
        if (reason) this.#resync(res, reason);
        return true;
      } catch (error) {
        if (this.#abort.signal.aborted) return undefined;
        backoff = this.#nextBackoff(backoff);
        this.#log.warn(
          { attempt, delay_ms: Math.round(backoff.duration), endpoints: this.endpoints, key: this.key, error: errorMessage(error) },
          'etcd_reconnect_retry',
        );
        await this.#sleep(backoff.duration).catch(() => undefined);
      }
    }
    return undefined;
  }

  /**
   * Compare a linearizable answer with the position held when it was requested. Anything the
   * watch had delivered then was committed before the read, so the read must be at least as new.
   */
  #contradiction(res: IRangeResponse, before: Position): ResyncReason | undefined {
    const reason = headerContradiction(res.header, before);
    if (reason) return reason;
    const mod = Number(res.kvs[0]?.mod_revision ?? 0);
    if (mod !== 0 && mod <= before.resume - 1 && mod !== before.mod) return 'history_diverged';
    return undefined;
  }

  /** Take the current state of the key as the new position, and report it when it is news. */
  #resync(res: IRangeResponse, reason: ResyncReason): void {
    const before = this.#position!;
    const kv = res.kvs[0];
    this.#position = positionAt(res);
    const { mod } = this.#position;
    this.#stats.resyncs[reason] += 1;
    this.#log.warn(
      {
        reason,
        key: this.key,
        from_revision: before.resume - 1,
        to_revision: Number(res.header.revision),
        cluster_id: res.header.cluster_id,
        mod_revision: mod,
      },
      'resync',
    );
    this.#lag = undefined;
    // Same history (compaction, stall): an unchanged mod revision is the value already delivered.
    const sameHistory = reason === 'compacted' || reason === 'watch_stalled' || reason === 'watch_canceled';
    if (kv && (!sameHistory || mod !== before.mod)) this.#report(kv);
    else if (!kv && before.mod !== 0) this.#deleted(Number(res.header.revision), 'resync');
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
      const end = (result: SessionEnd) => {
        if (ended) return;
        ended = true;
        clearTimeout(connectTimer);
        this.#endSession = undefined;
        this.#stats.connected = false;
        // The cancel surfaces as a CANCELLED error: the listener below swallows it once ended.
        stream.cancel();
        resolve(result);
      };
      this.#endSession = end;
      const connectTimer = setTimeout(
        () => end({ kind: 'disconnected', error: new Error(`watch not established within ${this.#requestTimeoutMs} ms`) }),
        this.#requestTimeoutMs,
      );
      connectTimer.unref();
      stream.on('data', (res: IWatchResponse) => {
        if (ended) return;
        try {
          this.#onStreamResponse(res, end, () => {
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
      stream.write({ create_request: { key: Buffer.from(this.key), start_revision: String(position.resume), progress_notify: true } });
    });
  }

  /** Dispatch one response of the watch stream: cancel, contradiction, created, or events. */
  #onStreamResponse(res: IWatchResponse, end: (result: SessionEnd) => void, connected: () => void): void {
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
    this.#onWatchResponse(res);
  }

  #onWatchResponse(res: IWatchResponse): void {
    const position = this.#position!;
    const events = res.events;
    const last = events.at(-1);
    if (!last) {
      // A progress notification: nothing for the key up to the header revision.
      position.resume = Math.max(position.resume, Number(res.header.revision) + 1);
      return;
    }
    // Only the newest value matters: a batch reports its last put; every delete in it is still
    // logged and counted, a trailing one as well as one a later put in the batch undid.
    const puts = events.filter((event) => event.type === 'Put');
    this.#stats.events.put += puts.length;
    const lastPut = puts.at(-1);
    if (lastPut) this.#report(lastPut.kv);
    for (const event of events) if (event.type === 'Delete') this.#deleted(Number(event.kv.mod_revision), 'watch');
    position.mod = last.type === 'Delete' ? 0 : Number(last.kv.mod_revision);
    // After clientv3: resume after the last event, not the header (a catch-up batch may be partial).
    position.resume = Number(last.kv.mod_revision) + 1;
  }

  /**
   * Every `consistencyCheckIntervalMs` while watching: a keys-only get of the key. A
   * contradiction (see `#contradiction`) or a change the watch has not delivered within a whole
   * interval ends the session with a resync; a failed get ends it as disconnected (the recovery
   * retries until etcd answers).
   */
  async #checkConsistency(): Promise<void> {
    const endSession = this.#endSession;
    if (!endSession || !this.#stats.connected || this.#checking) return;
    this.#checking = true;
    try {
      const before = { ...this.#position! };
      let res: IRangeResponse;
      try {
        res = await this.#range({ keysOnly: true });
      } catch (error) {
        if (this.#endSession === endSession) endSession({ kind: 'disconnected', error: error as Error });
        return;
      }
      if (this.#endSession !== endSession) return;
      const reason = this.#contradiction(res, before);
      if (reason) return endSession({ kind: 'resync', reason });
      // Stalled: the key had changed at the previous check and the watch delivered nothing since.
      const lagging = Number(res.kvs[0]?.mod_revision ?? 0) !== before.mod;
      if (lagging && this.#lag?.resume === before.resume) return endSession({ kind: 'resync', reason: 'watch_stalled' });
      this.#lag = lagging ? { resume: before.resume } : undefined;
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

/** What a linearizable get of the key establishes: every change of it up to the header revision is known. */
function positionAt(res: IRangeResponse): Position {
  return { resume: Number(res.header.revision) + 1, mod: Number(res.kvs[0]?.mod_revision ?? 0), clusterId: res.header.cluster_id };
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
    grpcOptions: { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5000 },
    faultHandling: {
      host: () => noop,
      // With several endpoints, a recoverable failure tries the next one.
      global: options.endpoints.length > 1 ? retry(handleWhen(isRecoverableError), { maxAttempts: options.endpoints.length - 1 }) : noop,
    },
  };
}
