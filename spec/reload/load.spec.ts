import { expect } from 'chai';
import { stringify } from 'yaml';
import { rejectionOf } from '../../harness/wait.js';
import { loadConfig } from '../../lib/config/parse.js';
import { ConfigInvalidError } from '../../lib/core/errors.js';
import { NO_TLS_MATERIAL } from '../../lib/net/tls-files.js';
import { loadDocument, type ServedConfig } from '../../lib/reload/load.js';
import type { RawDocument, SourceInfo } from '../../lib/sources/source.js';

const FILE: SourceInfo = { kind: 'file', path: '/etc/hotconf.yaml' };
const ETCD: SourceInfo = { kind: 'etcd', endpoints: ['http://127.0.0.1:2379'], key: '/hotconf/config' };

function config(body: string): string {
  return stringify({ listeners: [{ name: 'web', listen: '127.0.0.1:8080', routes: [{ path_prefix: '/', respond: { status: 200, body } }] }] });
}

function doc(text: string, version: string, source: SourceInfo = FILE): RawDocument {
  return { text, version, source };
}

function served(text: string, version: string, source: SourceInfo = FILE): ServedConfig {
  return { hash: loadConfig(text).hash, version, source, tls: NO_TLS_MATERIAL };
}

describe('loadDocument', () => {
  it('loads the first document: the validated config and its canonical hash', async () => {
    const outcome = await loadDocument(doc(config('one'), 'v1'), undefined);
    expect(outcome).to.deep.equal({ kind: 'loaded', loaded: loadConfig(config('one')), tls: NO_TLS_MATERIAL });
  });

  it('is unchanged without parsing for the version already served from the same kind of source', async () => {
    expect(await loadDocument(doc('{ not: [valid', 'v1'), served(config('one'), 'v1'))).to.deep.equal({ kind: 'unchanged' });
  });

  it('parses a document of the served version from another kind of source', async () => {
    const outcome = await loadDocument(doc(config('two'), 'v1', ETCD), served(config('one'), 'v1', FILE));
    expect(outcome.kind).to.equal('loaded');
  });

  it('is unchanged for a new version whose canonical hash is the one served (order, comments, defaults)', async () => {
    const reordered = `# same config, other spelling\nlisteners:\n  - routes: [{respond: {body: one, status: 200, headers: {}}, path_prefix: /}]\n    listen: "127.0.0.1:8080"\n    name: web\n`;
    expect(await loadDocument(doc(reordered, 'v2'), served(config('one'), 'v1'))).to.deep.equal({ kind: 'unchanged' });
  });

  it('loads a new version whose config differs', async () => {
    const outcome = await loadDocument(doc(config('two'), 'v2'), served(config('one'), 'v1'));
    expect(outcome).to.deep.equal({ kind: 'loaded', loaded: loadConfig(config('two')), tls: NO_TLS_MATERIAL });
  });

  it('throws ConfigInvalidError naming the file path, the etcd key, or else the source kind', async () => {
    const bad = config('x').replace('127.0.0.1:8080', 'nowhere');
    const origins: (string | undefined)[] = [];
    for (const source of [FILE, ETCD, { kind: 'inline' }]) {
      const error = await rejectionOf(loadDocument(doc(bad, 'v9', source), undefined));
      expect(error).to.be.instanceOf(ConfigInvalidError).with.property('code', 'E_CONFIG_INVALID');
      expect((error as ConfigInvalidError).issues).to.deep.equal([
        { path: 'listeners.0.listen', message: 'expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080' },
      ]);
      origins.push((error as ConfigInvalidError).origin);
    }
    expect(origins).to.deep.equal(['/etc/hotconf.yaml', '/hotconf/config', 'inline']);
  });

  it('applies maxDocumentBytes before parsing', async () => {
    const text = config('a');
    const limit = Buffer.byteLength(text) - 1;
    const error = await rejectionOf(loadDocument(doc(text, 'v1'), undefined, { maxDocumentBytes: limit }));
    expect(error)
      .to.be.instanceOf(ConfigInvalidError)
      .with.property('message', `/etc/hotconf.yaml: invalid config: document is ${limit + 1} bytes; the limit is ${limit} bytes`);
    expect((await loadDocument(doc(text, 'v1'), undefined, { maxDocumentBytes: limit + 1 })).kind).to.equal('loaded');
  });
});
