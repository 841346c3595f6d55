import { Counter, Gauge, type Registry } from 'prom-client';
import type { EtcdSourceStats } from './stats.js';

/**
 * The etcd source's metrics on a daemon's prom-client registry, read from `stats()` at scrape
 * time (so several daemons in one process each report their own source):
 * - `hotconf_source_revision` (gauge): mod revision of the newest value of the key delivered
 * - `hotconf_source_connected` (gauge, 0/1): a watch is established
 * - `hotconf_source_reconnects_total` (counter): watches re-established after a lost connection
 * - `hotconf_source_resyncs_total{reason}` (counter): full re-reads, by `ResyncReason`
 * - `hotconf_source_events_total{event}` (counter): watch events on the key, `put` / `delete`
 * - `hotconf_source_fragments` (gauge, with `fragments`: a prefix source): fragments in the newest set delivered
 *
 * With a prefix, `revision` is the store revision of the newest set delivered and the events
 * are those on the prefix's keys.
 */
export function registerEtcdSourceMetrics(register: Registry, stats: () => EtcdSourceStats, options: { fragments?: boolean } = {}): void {
  if (options.fragments) {
    new Gauge({
      name: 'hotconf_source_fragments',
      help: 'Keys under the etcd prefix (fragments) in the newest set the source delivered.',
      registers: [register],
      collect() {
        this.set(stats().fragments);
      },
    });
  }
  new Gauge({
    name: 'hotconf_source_revision',
    help: 'etcd mod revision of the newest value of the config key the source delivered.',
    registers: [register],
    collect() {
      this.set(stats().revision);
    },
  });
  new Gauge({
    name: 'hotconf_source_connected',
    help: '1 while the watch on the config key is established, else 0.',
    registers: [register],
    collect() {
      this.set(stats().connected ? 1 : 0);
    },
  });
  new Counter({
    name: 'hotconf_source_reconnects_total',
    help: 'Watches re-established after the connection to etcd was lost.',
    registers: [register],
    collect() {
      this.reset();
      this.inc(stats().reconnects);
    },
  });
  new Counter({
    name: 'hotconf_source_resyncs_total',
    help: 'Full re-reads of the config key at the current revision, by reason.',
    labelNames: ['reason'],
    registers: [register],
    collect() {
      this.reset();
      for (const [reason, count] of Object.entries(stats().resyncs)) this.inc({ reason }, count);
    },
  });
  new Counter({
    name: 'hotconf_source_events_total',
    help: 'Watch events on the config key, by type.',
    labelNames: ['event'],
    registers: [register],
    collect() {
      this.reset();
      const { events } = stats();
      this.inc({ event: 'put' }, events.put);
      this.inc({ event: 'delete' }, events.delete);
    },
  });
}
