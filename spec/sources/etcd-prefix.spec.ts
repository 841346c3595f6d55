import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { Etcd3, type IWatchResponse } from 'etcd3';
import { Registry } from 'prom-client';
import sinon from 'sinon';
import { onCleanup } from '../../harness/cleanup.js';
import { type MemoryLogs, memoryLogger } from '../../harness/daemon.js';
import { EtcdServer } from '../../harness/etcd.js';
import { sampleValue } from '../../harness/metrics.js';
import { waitFor } from '../../harness/wait.js';
import { EtcdSource, type EtcdSourceOptions, prefixRange } from '../../lib/sources/etcd/etcd.js';
import type { RawDocument } from '../../lib/sources/source.js';
import { muteNextWatch } from './etcd-faults.js';

const PREFIX = '/hotconf/routes/';

/** A started, watching prefix source and what it reported. */
interface Watched {
  source: EtcdSource;
  /** The etcd3 client the source uses (specs stub its calls to inject faults). */
  client: Etcd3;
  docs: RawDocument[];
  errors: Error[];
  logs: MemoryLogs;
  /** The newest document's fragments as `name → text`. */
  latest(): Map<string, string>;
}

/** A prefix source on `etcd` (short backoff and check interval), read once and watching; closed after the test. */
async function watchPrefix(etcd: EtcdServer, options: Partial<EtcdSourceOptions> = {}): Promise<Watched> {
  const logs = memoryLogger();
  let client!: Etcd3;
  const source = new EtcdSource({
    endpoints: [etcd.clientUrl],
    prefix: PREFIX,
    logger: logs.logger,
    backoff: { initialMs: 20, maxMs: 500 },
    consistencyCheckIntervalMs: 1000,
    clientFactory: (o) => (client = new Etcd3(o)),
    ...options,
  });
  onCleanup(() => source.close());
  const docs: RawDocument[] = [await source.read()];
  const errors: Error[] = [];
  await source.watch({ onDocument: (doc) => docs.push(doc), onError: (error) => errors.push(error) });
  return { source, client, docs, errors, logs, latest: () => texts(docs.at(-1)!) };
}

/**
 * Keys `a`, `b`, `c` under the prefix, watched; then etcd killed (the source sees its watch
 * lost) and restarted with the source's reads failing (`range`, restore it to let them
 * through), so that writes made now can only reach the source through its resumed watch.
 */
async function outage(etcd: EtcdServer): Promise<Watched & { range: sinon.SinonStub }> {
  for (const name of ['a', 'b', 'c']) await etcd.put(PREFIX + name, `${name}: 0\n`);
  const watched = await watchPrefix(etcd);
  await etcd.kill();
  await waitFor('the source to see the watch lost', () => !watched.source.stats().connected);
  const range = sinon.stub(watched.client.kv, 'range').rejects(new Error('injected: etcd unreachable'));
  await etcd.restart();
  return { ...watched, range };
}
function texts(doc: RawDocument): Map<string, string> {
  return new Map((doc.fragments ?? []).map((f) => [f.name, f.text]));
}

/** What the watch should converge on: every key under the prefix and its value, read with the spec's own client. */
async function etcdState(etcd: EtcdServer): Promise<Map<string, string>> {
  const values = await etcd.client().getAll().prefix(PREFIX).strings();
  return new Map(Object.entries(values));
}

/** Write the keys `PREFIX + name` in one transaction (one revision); resolves with its revision. */
async function putInOneTransaction(etcd: EtcdServer, entries: [string, string | Buffer][]): Promise<number> {
  const res = await etcd.client().kv.txn({
    compare: [],
    success: entries.map(([name, value]) => ({ request_put: { key: Buffer.from(PREFIX + name), value: Buffer.from(value) } })),
    failure: [],
  });
  return Number(res.header.revision);
}

describe('EtcdSource --prefix with a real etcd', function () {
  this.timeout(60_000);
  let etcd: EtcdServer;
  beforeEach(async () => {
    etcd = await EtcdServer.start();
  });

  it('reads every key under the prefix as a fragment, in name order, with versions and source facts', async () => {
    await etcd.put(`${PREFIX}b.yaml`, 'b: 1\n');
    const a = await etcd.put(`${PREFIX}a.yaml`, 'a: 1\n');
    // Neighbours that share the text of the prefix but are not under it.
    await etcd.put('/hotconf/routes', 'not under the prefix');
    await etcd.put('/hotconf/routes0', 'not under the prefix');
    const revision = await etcd.put(`${PREFIX}c/d.yaml`, 'c: 1\n');
    const { docs } = await watchPrefix(etcd);
    const [doc] = docs;
    expect(doc!.text).to.equal('');
    expect(doc!.fragments!.map((f) => f.name)).to.deep.equal([`${PREFIX}a.yaml`, `${PREFIX}b.yaml`, `${PREFIX}c/d.yaml`]);
    expect(doc!.fragments![0]).to.deep.equal({
      name: `${PREFIX}a.yaml`,
      text: 'a: 1\n',
      version: `${a}:${createHash('sha256').update('a: 1\n').digest('hex').slice(0, 16)}`,
    });
    expect(doc!.source).to.deep.equal({ kind: 'etcd', endpoints: [etcd.clientUrl], prefix: PREFIX, revision, fragments: 3 });
  });

  it('delivers a changed key, a new key and a deleted key as the new set, each with a new set version', async () => {
    await etcd.put(`${PREFIX}a`, 'a: 1\n');
    await etcd.put(`${PREFIX}b`, 'b: 1\n');
    const { docs, latest, source } = await watchPrefix(etcd);
    const versions = [docs[0]!.version];

    await etcd.put(`${PREFIX}a`, 'a: 2\n');
    await waitFor('the changed key', () => latest().get(`${PREFIX}a`) === 'a: 2\n');
    await etcd.put(`${PREFIX}c`, 'c: 1\n');
    await waitFor('the new key', () => latest().has(`${PREFIX}c`));
    versions.push(docs.at(-2)!.version, docs.at(-1)!.version);
    const deleted = await etcd.delete(`${PREFIX}b`);
    await waitFor('the deleted key to leave the set', () => !latest().has(`${PREFIX}b`));
    expect(latest()).to.deep.equal(
      new Map([
        [`${PREFIX}a`, 'a: 2\n'],
        [`${PREFIX}c`, 'c: 1\n'],
      ]),
    );
    expect(docs.at(-1)!.source).to.include({ revision: deleted, fragments: 2 });
    versions.push(docs.at(-1)!.version);
    expect(new Set(versions).size).to.equal(4);
    expect(source.stats().events).to.deep.equal({ put: 2, delete: 1 });
    expect(source.stats()).to.include({ revision: deleted, fragments: 2 });

    // The same set again (b written back with its old text, then deleted) has the same version.
    await etcd.put(`${PREFIX}b`, 'b: 1\n');
    await waitFor('b back', () => latest().has(`${PREFIX}b`));
    await etcd.delete(`${PREFIX}b`);
    await waitFor('b gone again', () => !latest().has(`${PREFIX}b`));
    expect(docs.at(-1)!.version).to.equal(versions.at(-1));
  });

  it('delivers a transaction writing 100 keys as one document', async () => {
    await etcd.put(`${PREFIX}first`, 'x: 0\n');
    const { docs, latest } = await watchPrefix(etcd);
    const entries = Array.from({ length: 100 }, (_, i): [string, string] => [`bulk-${String(i).padStart(3, '0')}`, `n: ${i}\n`]);
    const revision = await putInOneTransaction(etcd, entries);
    await waitFor('the transaction to be delivered', () => latest().size === 101);
    // A later write, delivered after it, witnesses that no other document came from the transaction.
    await etcd.put(`${PREFIX}marker`, 'm: 1\n');
    await waitFor('the marker', () => latest().has(`${PREFIX}marker`));
    const withBulk = docs.slice(1, -1);
    expect(withBulk).to.have.length(1);
    expect(withBulk[0]!.source).to.include({ revision, fragments: 101 });
  });

  it('puts together a revision etcd splits into several watch responses (deleting 20,000 long keys at once) as one document', async () => {
    const long = 'x'.repeat(100);
    for (let chunk = 0; chunk < 200; chunk += 1) {
      await putInOneTransaction(
        etcd,
        Array.from({ length: 100 }, (_, i): [string, string] => [`bulk/${long}-${String(chunk * 100 + i).padStart(5, '0')}`, '{}']),
      );
    }
    await etcd.put(`${PREFIX}keep`, 'keep: 1\n');
    // etcd takes seconds to send this revision: no consistency check may resync meanwhile.
    const { docs, latest, client, source } = await watchPrefix(etcd, { consistencyCheckIntervalMs: 600_000 });
    expect(latest().size).to.equal(20_001);
    // Restart the watch on a stream whose responses the spec sees too.
    let fragments = 0;
    const watch = client.watchClient.watch.bind(client.watchClient);
    sinon.stub(client.watchClient, 'watch').callsFake(async (options) => {
      const stream = await watch(options);
      stream.on('data', (res: IWatchResponse) => void (fragments += res.fragment ? 1 : 0));
      return stream;
    });
    await etcd.restart();
    await waitFor('the tapped watch', () => source.stats().reconnects === 1, 30_000);
    // One delete of 20,000 keys: about 2.3 MB of events in one revision, over etcd's 1.5 MiB
    // request limit, so etcd sends it in fragments.
    const res = await etcd.client().delete().prefix(`${PREFIX}bulk/`).exec();
    expect(res.deleted).to.equal('20000');
    await waitFor('the delete to be delivered', () => latest().size === 1, 30_000);
    await etcd.put(`${PREFIX}marker`, 'm: 1\n');
    await waitFor('the marker', () => latest().has(`${PREFIX}marker`));
    expect(fragments).to.be.above(0);
    expect(docs.map((d) => d.fragments!.length)).to.deep.equal([20_001, 1, 2]);
    expect(docs[1]!.source.revision).to.equal(Number(res.header.revision));
  });

  it('reads a prefix of 2500 keys in pages at one revision: a key written between pages is not in the read, and the watch delivers it', async () => {
    for (let chunk = 0; chunk < 25; chunk += 1) {
      await putInOneTransaction(
        etcd,
        Array.from({ length: 100 }, (_, i): [string, string] => [`k${String(chunk * 100 + i).padStart(5, '0')}`, `v: ${i}\n`]),
      );
    }
    const logs = memoryLogger();
    let client!: Etcd3;
    const source = new EtcdSource({
      endpoints: [etcd.clientUrl],
      prefix: PREFIX,
      pageKeys: 1000,
      logger: logs.logger,
      clientFactory: (o) => (client = new Etcd3(o)),
    });
    onCleanup(() => source.close());
    const range = sinon.stub(client.kv, 'range').callThrough();
    let late = 0;
    range.onSecondCall().callsFake(async (...args) => {
      late = await etcd.put(`${PREFIX}a-late`, 'late: 1\n');
      return range.wrappedMethod.apply(client.kv, args);
    });
    const doc = await source.read();
    expect(range.callCount).to.equal(3);
    expect(doc.fragments).to.have.length(2500);
    expect(doc.fragments!.map((f) => f.name)).to.not.include(`${PREFIX}a-late`);
    expect(doc.source.revision).to.be.below(late);
    range.restore();

    const docs: RawDocument[] = [];
    await source.watch({ onDocument: (d) => docs.push(d), onError: () => undefined });
    const next = await waitFor('the late key from the watch', () => docs.find((d) => d.fragments!.some((f) => f.name === `${PREFIX}a-late`)));
    expect(next.fragments).to.have.length(2501);
    expect(next.source.revision).to.equal(late);
  });

  it('resumes after kill -9 and a restart from the last revision + 1: puts and deletes of the outage all arrive, nothing missed', async () => {
    const { source, latest, logs, range } = await outage(etcd);
    await etcd.put(`${PREFIX}a`, 'a: 1\n');
    await etcd.delete(`${PREFIX}b`);
    await etcd.put(`${PREFIX}d`, 'd: 1\n');
    await etcd.put(`${PREFIX}a`, 'a: 2\n');
    range.restore();
    await waitFor('the outage writes to be delivered', async () => JSON.stringify([...latest()]) === JSON.stringify([...(await etcdState(etcd))]), 30_000);
    expect(latest()).to.deep.equal(
      new Map([
        [`${PREFIX}a`, 'a: 2\n'],
        [`${PREFIX}c`, 'c: 0\n'],
        [`${PREFIX}d`, 'd: 1\n'],
      ]),
    );
    await waitFor('the reconnect to be counted', () => source.stats().reconnects === 1);
    expect(Object.values(source.stats().resyncs)).to.deep.equal([0, 0, 0, 0, 0, 0]);
    expect(source.stats().events).to.deep.equal({ put: 3, delete: 1 });
    expect(logs.lines().find((l) => l.msg === 'fragment_deleted')).to.include({ key: `${PREFIX}b`, via: 'watch' });
  });

  it('resyncs from a compacted resume revision: the set at the current revision, deletes included', async () => {
    const { source, latest, logs, range } = await outage(etcd);
    await etcd.put(`${PREFIX}a`, 'a: 1\n');
    await etcd.delete(`${PREFIX}b`);
    await etcd.put(`${PREFIX}a`, 'a: 2\n');
    await etcd.compact();
    range.restore();
    await waitFor('the compacted writes to be delivered', () => latest().get(`${PREFIX}a`) === 'a: 2\n' && !latest().has(`${PREFIX}b`), 30_000);
    expect(latest()).to.deep.equal(await etcdState(etcd));
    expect(source.stats().resyncs.compacted).to.equal(1);
    expect(logs.lines().find((l) => l.msg === 'resync')).to.include({ reason: 'compacted', prefix: PREFIX, keys: 2 });
    expect(logs.lines().find((l) => l.msg === 'fragment_deleted')).to.include({ key: `${PREFIX}b`, via: 'resync' });
    await etcd.put(`${PREFIX}e`, 'e: 1\n');
    await waitFor('puts after the resync', () => latest().has(`${PREFIX}e`));
  });

  it('resyncs when etcd comes back with a wiped data dir (revision went backwards): the new history is the set', async () => {
    for (let i = 0; i < 6; i += 1) await etcd.put(`${PREFIX}old-${i}`, `old: ${i}\n`);
    const { source, latest } = await watchPrefix(etcd);
    await etcd.wipe();
    await etcd.put(`${PREFIX}fresh`, 'fresh: 1\n');
    await waitFor('the new history to be the set', () => latest().size === 1 && latest().has(`${PREFIX}fresh`), 30_000);
    expect(source.stats().resyncs.revision_backwards).to.equal(1);
    await etcd.put(`${PREFIX}next`, 'next: 1\n');
    await waitFor('puts after the resync', () => latest().has(`${PREFIX}next`));
  });

  it('leaves a healthy watch alone: progress requests answered, six checks, no resync', async () => {
    await etcd.put(`${PREFIX}a`, 'a: 0\n');
    const { source, client } = await watchPrefix(etcd, { consistencyCheckIntervalMs: 100 });
    const range = sinon.spy(client.kv, 'range');
    await waitFor('six consistency checks', () => range.callCount >= 6);
    expect(range.getCalls().every((call) => call.args[0]?.count_only === true)).to.equal(true);
    expect(Object.values(source.stats().resyncs)).to.deep.equal([0, 0, 0, 0, 0, 0]);
    expect(source.stats().connected).to.equal(true);
  });

  for (const [change, how] of [
    ['a delete, which the count of keys shows', (etcd: EtcdServer) => etcd.delete(`${PREFIX}b`)],
    ['a change of an existing key, which only an unanswered progress request shows', (etcd: EtcdServer) => etcd.put(`${PREFIX}b`, 'b: 1\n')],
  ] as const) {
    it(`resyncs a watch that silently stopped delivering ${change}`, async () => {
      await etcd.put(`${PREFIX}a`, 'a: 0\n');
      await etcd.put(`${PREFIX}b`, 'b: 0\n');
      const { source, client, latest, docs } = await watchPrefix(etcd, { consistencyCheckIntervalMs: 300 });
      // Fault: the next watch stream delivers its `created` response and swallows every event.
      const muted = muteNextWatch(client);
      await etcd.restart();
      await waitFor('the muted watcher to be in use', () => muted() && source.stats().connected, 30_000);
      const before = docs.length;
      await how(etcd);
      await waitFor('the stalled watch to be resynced', () => docs.length > before, 30_000);
      expect(source.stats().resyncs.watch_stalled).to.equal(1);
      expect(latest()).to.deep.equal(await etcdState(etcd));
      await etcd.put(`${PREFIX}c`, 'c: 0\n');
      await waitFor('the new watcher to deliver', () => latest().has(`${PREFIX}c`));
    });
  }

  it('delivers a key over the size limit or not UTF-8 as a fragment with error, naming why, beside the other keys', async () => {
    await etcd.put(`${PREFIX}big`, 'big: 1\n');
    await etcd.put(`${PREFIX}binary`, 'binary: 1\n');
    await etcd.put(`${PREFIX}other`, 'other: 1\n');
    const { errors, latest, logs, docs } = await watchPrefix(etcd, { maxFragmentBytes: 64 });
    const revision = await putInOneTransaction(etcd, [
      ['big', `big: ${'x'.repeat(100)}\n`],
      ['binary', Buffer.from([0x80, 0x81])],
      ['other', 'other: 2\n'],
    ]);
    await waitFor('the change of the usable key', () => latest().get(`${PREFIX}other`) === 'other: 2\n');
    const doc = docs.at(-1)!;
    expect(doc.source).to.include({ revision, fragments: 3 });
    const [big, binary] = doc.fragments!;
    expect(big).to.deep.include({ name: `${PREFIX}big`, text: '', error: 'value is 106 bytes; the limit is 64 bytes (--max-document-bytes)' });
    expect(big!.version).to.match(new RegExp(`^${revision}:[0-9a-f]{16}$`));
    expect(binary).to.include({ name: `${PREFIX}binary`, text: '' });
    expect(binary!.error).to.match(/^document is not UTF-8 text/);
    expect(errors).to.deep.equal([]);
    expect(
      logs
        .lines()
        .filter((l) => l.msg === 'fragment_unusable')
        .map((l) => l.key),
    ).to.deep.equal([`${PREFIX}big`, `${PREFIX}binary`]);

    await etcd.put(`${PREFIX}big`, 'big: 2\n');
    await waitFor('a usable value again', () => latest().get(`${PREFIX}big`) === 'big: 2\n');
    expect(docs.at(-1)!.fragments![0]).to.not.have.property('error');
  });

  it('reports nothing when the last key is deleted (logged), and the next put as a set of one', async () => {
    await etcd.put(`${PREFIX}only`, 'only: 1\n');
    const { docs, latest, logs } = await watchPrefix(etcd);
    const deleted = await etcd.delete(`${PREFIX}only`);
    const line = await waitFor('the empty prefix to be logged', () => logs.lines().find((l) => l.msg === 'prefix_empty'));
    expect(line).to.include({ level: 40, prefix: PREFIX, revision: deleted });
    await etcd.put(`${PREFIX}again`, 'again: 1\n');
    await waitFor('the next put', () => latest().has(`${PREFIX}again`));
    expect(docs).to.have.length(2);
    expect(latest().size).to.equal(1);
  });

  it('waits at start until a key is under the prefix, then reads it', async () => {
    const logs = memoryLogger();
    const source = new EtcdSource({ endpoints: [etcd.clientUrl], prefix: PREFIX, logger: logs.logger, backoff: { initialMs: 20, maxMs: 100 } });
    onCleanup(() => source.close());
    const read = source.read();
    const retry = await waitFor('a startup retry', () => logs.lines().find((l) => l.msg === 'etcd_startup_retry'));
    expect(retry).to.include({ prefix: PREFIX });
    expect(retry.error).to.match(/no key under the prefix/);
    await etcd.put(`${PREFIX}late`, 'late: 1\n');
    expect((await read).fragments!.map((f) => f.name)).to.deep.equal([`${PREFIX}late`]);
  });

  it('exports the fragment count, revision and events as metrics', async () => {
    await etcd.put(`${PREFIX}a`, 'a: 1\n');
    const { source, latest } = await watchPrefix(etcd);
    const revision = await etcd.put(`${PREFIX}b`, 'b: 1\n');
    await waitFor('b', () => latest().has(`${PREFIX}b`));
    const register = new Registry();
    source.registerMetrics(register);
    const text = await register.metrics();
    expect(sampleValue(text, 'hotconf_source_fragments')).to.equal(2);
    expect(sampleValue(text, 'hotconf_source_revision')).to.equal(revision);
    expect(sampleValue(text, 'hotconf_source_events_total', { event: 'put' })).to.equal(1);
  });
});

describe('EtcdSource --prefix options', () => {
  it('takes every key starting with the prefix, as etcd clientv3 GetPrefixRangeEnd', () => {
    expect(prefixRange('/a/')).to.deep.equal({ key: Buffer.from('/a/'), range_end: Buffer.from('/a0') });
    // 'ÿ' is C3 BF in UTF-8: the last byte is incremented.
    expect(prefixRange('aÿ').range_end).to.deep.equal(Buffer.from([0x61, 0xc3, 0xc0]));
  });

  it('needs exactly one of key and prefix, and a prefix that is not empty', () => {
    expect(() => new EtcdSource({ endpoints: ['http://127.0.0.1:2379'] })).to.throw('EtcdSource needs exactly one of key and prefix');
    expect(() => new EtcdSource({ endpoints: ['http://127.0.0.1:2379'], key: '/k', prefix: '/p/' })).to.throw('exactly one of key and prefix');
    expect(() => new EtcdSource({ endpoints: ['http://127.0.0.1:2379'], prefix: '' })).to.throw('prefix must not be empty');
  });
});
