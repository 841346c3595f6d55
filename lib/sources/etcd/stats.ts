/** The etcd source's counters and state: shared by the source, which writes them, and its metrics, which read them. */

/** Why the source threw its watch position away and re-read the key at the current revision. */
export type ResyncReason =
  /** The resume revision was compacted while the watch was down. */
  | 'compacted'
  /** The cluster answers with another cluster ID (cluster rebuilt). */
  | 'cluster_id_changed'
  /** The store revision is below one already seen (data dir wiped or restored from a backup). */
  | 'revision_backwards'
  /** The key's mod revision is one the watch already covered, yet not the one it delivered. */
  | 'history_diverged'
  /** The key changed a whole check interval ago and the watch still has not delivered it. */
  | 'watch_stalled'
  /** etcd cancelled the watch for another reason. */
  | 'watch_canceled';

export const RESYNC_REASONS: readonly ResyncReason[] = [
  'compacted',
  'cluster_id_changed',
  'revision_backwards',
  'history_diverged',
  'watch_stalled',
  'watch_canceled',
];

/** Counters and state of one `EtcdSource`, read by its metrics at scrape time. */
export interface EtcdSourceStats {
  /** Mod revision of the newest value of the key the source delivered; with a prefix, the store revision of the newest set (0: none yet). */
  revision: number;
  /** With a prefix: keys (fragments) in the newest set delivered (0 for a single key). */
  fragments: number;
  /** A watch is established. */
  connected: boolean;
  /** Watches re-established after a lost connection. */
  reconnects: number;
  resyncs: Record<ResyncReason, number>;
  /** Watch events on the key (the prefix's keys), by type. */
  events: { put: number; delete: number };
}
