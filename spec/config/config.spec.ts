import { readFileSync } from 'node:fs';
import { validateHeaderValue } from 'node:http';
import { expect } from 'chai';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { parseListenAddress } from '../../lib/config/address.js';
import { decodeDocument } from '../../lib/config/decode.js';
import { DEFAULT_MAX_DOCUMENT_BYTES, loadConfig, MAX_DOCUMENT_NODES, MAX_MAP_KEYS, parseDocument, validateConfig } from '../../lib/config/parse.js';
import { REDACTED, redactConfig, scrubSecrets, secretValues } from '../../lib/config/redact.js';
import { ConfigInvalidError } from '../../lib/core/errors.js';

const DEMO = readFileSync(new URL('../../fixtures/demo.yaml', import.meta.url), 'utf8');

function issuesOf(fn: () => unknown): { path: string; message: string }[] {
  try {
    fn();
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigInvalidError);
    expect((error as ConfigInvalidError).code).to.equal('E_CONFIG_INVALID');
    return [...(error as ConfigInvalidError).issues];
  }
  throw new Error('expected the config to be rejected');
}

function minimal(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { listeners: [{ name: 'web', listen: '127.0.0.1:8080', routes: [{ path_prefix: '/', respond: { status: 200 } }] }], ...extra };
}

describe('config parsing and validation', () => {
  it('accepts the demo config and fills defaults', () => {
    const { config, hash } = loadConfig(DEMO, { origin: 'demo.yaml' });
    expect(config.admin.listen).to.equal('127.0.0.1:9901');
    expect(config.listeners[0]!.name).to.equal('web');
    expect(config.tracing!.batch).to.deep.equal({ scheduled_delay_ms: 5000, max_queue_size: 2048, max_export_batch_size: 512, export_timeout_ms: 30000 });
    expect(hash).to.match(/^[0-9a-f]{64}$/);
  });

  it('accepts JSON as well as YAML, with the same hash for the same config', () => {
    const yaml = loadConfig(stringify(minimal()));
    const json = loadConfig(JSON.stringify(minimal()));
    expect(json.hash).to.equal(yaml.hash);
  });

  it('gives the same hash whatever the key order, comments or explicitly written defaults', () => {
    const a = loadConfig('listeners:\n  - {name: web, listen: "127.0.0.1:8080", routes: [{path_prefix: /, respond: {status: 200}}]}\n');
    const b = loadConfig(
      '# a comment\nshutdown_timeout_ms: 10000\nadmin: {listen: "127.0.0.1:9901"}\nlisteners:\n  - routes: [{respond: {body: "", status: 200, headers: {}}, path_prefix: /}]\n    listen: "127.0.0.1:8080"\n    name: web\n',
    );
    expect(b.hash).to.equal(a.hash);
    expect(loadConfig(stringify(minimal({ shutdown_timeout_ms: 5 }))).hash).to.not.equal(a.hash);
  });

  it('deep-freezes the validated config', () => {
    const { config } = loadConfig(DEMO);
    expect(Object.isFrozen(config)).to.equal(true);
    expect(Object.isFrozen(config.listeners[0]!.routes[0]!.respond)).to.equal(true);
    expect(() => {
      (config.listeners[0] as { name: string }).name = 'changed';
    }).to.throw(TypeError);
  });

  it('names the path and the origin of each schema error', () => {
    const doc = minimal();
    (doc.listeners as Record<string, unknown>[])[0]!.listen = 'localhost';
    let error: ConfigInvalidError | undefined;
    try {
      loadConfig(stringify(doc), { origin: '/etc/hotconf.yaml' });
    } catch (e) {
      error = e as ConfigInvalidError;
    }
    expect(error?.issues).to.deep.equal([{ path: 'listeners.0.listen', message: 'expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080' }]);
    expect(error?.message).to.contain('/etc/hotconf.yaml').and.contain('listeners.0.listen');
  });

  it('rejects unknown keys at every depth, one issue per key at its own path', () => {
    const doc = minimal({ extra: 1 });
    ((doc.listeners as Record<string, unknown>[])[0]!.routes as Record<string, unknown>[])[0]!.respond = { status: 200, colour: 'red' };
    expect(issuesOf(() => validateConfig(doc))).to.have.deep.members([
      { path: 'extra', message: 'unknown key' },
      { path: 'listeners.0.routes.0.respond.colour', message: 'unknown key' },
    ]);
  });

  it('rejects wrong types and out-of-range values with their paths', () => {
    const doc = minimal({ shutdown_timeout_ms: 'soon', tracing: { sample_ratio: 2, exporter: 'zipkin' } });
    const paths = issuesOf(() => validateConfig(doc)).map((i) => i.path);
    expect(paths).to.include.members(['shutdown_timeout_ms', 'tracing.sample_ratio', 'tracing.exporter']);
  });

  it('rejects a route with no action, and a status outside 100-599', () => {
    const doc = minimal();
    (doc.listeners as Record<string, unknown>[])[0]!.routes = [{ path_prefix: '/' }, { path_prefix: '/x', respond: { status: 600 } }];
    const issues = issuesOf(() => validateConfig(doc));
    expect(issues.map((i) => i.path)).to.have.members(['listeners.0.routes.0', 'listeners.0.routes.1.respond.status']);
  });

  it('rejects duplicate listener names and addresses, and a listener on the admin address', () => {
    const doc = {
      listeners: [
        { name: 'web', listen: '127.0.0.1:8080' },
        { name: 'web', listen: '127.0.0.1:8081' },
        { name: 'other', listen: '127.0.0.1:8080' },
        { name: 'admin-clash', listen: '127.0.0.1:9901' },
      ],
    };
    const issues = issuesOf(() => validateConfig(doc));
    expect(issues).to.deep.include({ path: 'listeners.1.name', message: 'duplicate listener name "web" (also listeners.0.name)' });
    expect(issues).to.deep.include({ path: 'listeners.2.listen', message: 'address 127.0.0.1:8080 is already used by listeners.0' });
    expect(issues).to.deep.include({ path: 'listeners.3.listen', message: 'address 127.0.0.1:9901 is the admin address' });
  });

  it('rejects header values with CR or LF and invalid header names', () => {
    const doc = minimal();
    ((doc.listeners as Record<string, unknown>[])[0]!.routes as Record<string, unknown>[])[0]!.respond = {
      status: 200,
      headers: { 'x-ok': 'fine', 'x-bad': 'a\r\nset-cookie: evil=1', 'bad name': 'v' },
    };
    const paths = issuesOf(() => validateConfig(doc)).map((i) => i.path);
    expect(paths).to.include('listeners.0.routes.0.respond.headers.x-bad');
    expect(paths).to.include('listeners.0.routes.0.respond.headers.bad name');
  });

  it('rejects an empty document, a comment-only document and a bare scalar', () => {
    expect(issuesOf(() => parseDocument(''))).to.deep.equal([{ path: '', message: 'document is empty' }]);
    expect(issuesOf(() => parseDocument('# nothing here\n'))).to.deep.equal([{ path: '', message: 'document is empty' }]);
    expect(issuesOf(() => loadConfig('just a string')).map((i) => i.path)).to.deep.equal(['']);
  });

  it('rejects documents over the size limit before parsing them', () => {
    const big = `# ${'x'.repeat(DEFAULT_MAX_DOCUMENT_BYTES)}\n`;
    expect(issuesOf(() => parseDocument(big))[0]!.message).to.match(/^document is \d+ bytes; the limit is 1048576 bytes$/);
    expect(issuesOf(() => parseDocument('a: 1\nb: 2\n', { maxDocumentBytes: 5 }))[0]!.message).to.contain('limit is 5 bytes');
  });

  it('reports YAML syntax errors with their line and column', () => {
    const issues = issuesOf(() => parseDocument('listeners:\n  - name: web\n    listen: [unclosed\n'));
    expect(issues[0]!.message).to.match(/^syntax error: .* at line \d+, column \d+/);
  });

  it('rejects duplicate keys and multi-document YAML', () => {
    expect(issuesOf(() => parseDocument('a: 1\na: 2\n'))[0]!.message).to.contain('Map keys must be unique');
    expect(issuesOf(() => parseDocument('a: 1\n---\nb: 2\n'))).to.deep.equal([
      { path: '', message: 'multiple documents: the second starts at line 2, column 1; hotconf reads one document per file or key' },
    ]);
  });

  it('finds a duplicate key in a large map, and one spelled differently that would become the same key', () => {
    const entries = Array.from({ length: 9000 }, (_, i) => `  x-h${i}: v`);
    const big = `headers:\n${entries.join('\n')}\n  x-h0: again\n`;
    expect(issuesOf(() => parseDocument(big))).to.deep.equal([
      { path: '', message: 'Map keys must be unique: "x-h0" at line 9002, column 3 repeats the key at line 2, column 3' },
    ]);
    expect(issuesOf(() => parseDocument('a:\n  1: x\n  "1": y\n  ~: z\n  "": w\n')).map((i) => i.message)).to.deep.equal([
      'Map keys must be unique: "1" at line 3, column 3 repeats the key at line 2, column 3',
      'Map keys must be unique: "" at line 5, column 3 repeats the key at line 4, column 3',
    ]);
  });

  it('bounds documents by node count and map size, naming the limit and where', () => {
    const bomb = `listeners: [${Array(8000)
      .fill(`${'['.repeat(60)}${']'.repeat(60)}`)
      .join(',')}]\n`;
    expect(issuesOf(() => parseDocument(bomb))).to.deep.equal([
      { path: '', message: `document has more than ${MAX_DOCUMENT_NODES} nodes (keys, values and collections), the limit` },
    ]);
    const blockBomb = `l:\n${Array.from({ length: MAX_DOCUMENT_NODES }, () => '  - - x').join('\n')}\n`;
    expect(issuesOf(() => parseDocument(blockBomb, { maxDocumentBytes: 8 * 1024 * 1024 }))[0]!.message).to.contain(`more than ${MAX_DOCUMENT_NODES} nodes`);
    const wide = `listeners: []\nheaders:\n${Array.from({ length: MAX_MAP_KEYS + 1 }, (_, i) => `  h${i}: v`).join('\n')}\n`;
    expect(issuesOf(() => parseDocument(wide))).to.deep.equal([
      { path: '', message: `the map at line 3, column 3 has ${MAX_MAP_KEYS + 1} keys; the limit is ${MAX_MAP_KEYS}` },
    ]);
    const flowWide = `{"h": {${Array.from({ length: MAX_MAP_KEYS + 1 }, (_, i) => `"h${i}": 1`).join(', ')}}}`;
    expect(issuesOf(() => parseDocument(flowWide))[0]!.message).to.equal(
      `the map at line 1, column 7 has ${MAX_MAP_KEYS + 1} keys; the limit is ${MAX_MAP_KEYS}`,
    );
    expect(parseDocument(`h:\n${Array.from({ length: MAX_MAP_KEYS }, (_, i) => `  h${i}: v`).join('\n')}\n`)).to.have.nested.property('h.h9999', 'v');
  });

  it('refuses tags the core schema does not know instead of applying them as strings', () => {
    expect(issuesOf(() => parseDocument('shutdown_timeout_ms: !duration 5s\nlisteners: []\n'))).to.deep.equal([
      { path: '', message: 'unknown tag: !duration at line 1, column 22' },
    ]);
    // js-yaml stops at the first unknown tag.
    expect(issuesOf(() => parseDocument('a: !!binary aGk=\nb: !!timestamp 2001-01-01\n')).map((i) => i.message)).to.deep.equal([
      'unknown tag: tag:yaml.org,2002:binary at line 1, column 4',
    ]);
    for (const [text, tag] of [
      ['a: !!timestamp 2001-01-01\n', 'tag:yaml.org,2002:timestamp'],
      ['a: !!set {x}\n', 'tag:yaml.org,2002:set'],
      ['a: !!merge <<\n', 'tag:yaml.org,2002:merge'],
    ]) {
      expect(issuesOf(() => parseDocument(text!))).to.deep.equal([{ path: '', message: `unknown tag: ${tag} at line 1, column 4` }]);
    }
    expect(parseDocument('a: !!str 5\nb: !!int "7"\n')).to.deep.equal({ a: '5', b: 7 });
  });

  it('says when a file is UTF-16, UTF-32, binary or not UTF-8, instead of reporting its schema errors', () => {
    const text = 'listeners: []\n';
    const cases: [Buffer, string][] = [
      [
        Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]),
        'document is UTF-16LE text (it starts with the byte order mark FF FE); hotconf reads UTF-8: convert it (iconv -f UTF-16LE -t UTF-8)',
      ],
      [
        Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(text, 'utf16le').swap16()]),
        'document is UTF-16BE text (it starts with the byte order mark FE FF); hotconf reads UTF-8: convert it (iconv -f UTF-16BE -t UTF-8)',
      ],
      [
        Buffer.from([0xff, 0xfe, 0, 0, 0x6c, 0, 0, 0]),
        'document is UTF-32LE text (it starts with the byte order mark FF FE 00 00); hotconf reads UTF-8: convert it (iconv -f UTF-32LE -t UTF-8)',
      ],
      [Buffer.from(text, 'utf16le'), 'document looks binary or UTF-16: it has a NUL byte at line 1 (byte offset 1); hotconf reads UTF-8 text'],
      [Buffer.from('a: 1\nb: caf\xe9\n', 'latin1'), 'document is not UTF-8 text: the bytes at line 2 (byte offset 11) are not UTF-8; hotconf reads UTF-8 text'],
      [
        Buffer.from([0x61, 0x3a, 0x20, 0xed, 0xa0, 0x80]),
        'document is not UTF-8 text: the bytes at line 1 (byte offset 3) are not UTF-8; hotconf reads UTF-8 text',
      ],
    ];
    for (const [bytes, message] of cases) {
      expect(
        issuesOf(() => loadConfig(bytes, { origin: 'c.yaml' })),
        message,
      ).to.deep.equal([{ path: '', message }]);
      expect(
        issuesOf(() => decodeDocument(bytes)),
        message,
      ).to.deep.equal([{ path: '', message }]);
    }
    expect(issuesOf(() => parseDocument('a: "x\0y"\n'))).to.deep.equal([
      { path: '', message: 'document looks binary: it has a NUL character at line 1, column 6; hotconf reads UTF-8 text' },
    ]);
    // A UTF-8 byte order mark and text beyond ASCII are fine.
    expect(parseDocument(Buffer.from('\ufeffa: café ✓\n', 'utf8'))).to.deep.equal({ a: 'café ✓' });
  });

  it('reports the received type of a value that is present but of the wrong type, and "required" only when it is missing', () => {
    const doc = minimal({ shutdown_timeout_ms: '10s', admin: [] });
    ((doc.listeners as Record<string, unknown>[])[0]!.routes as Record<string, unknown>[])[0]!.respond = { status: null, headers: 'x: y' };
    (doc.listeners as Record<string, unknown>[]).push({ name: 'other' });
    expect(issuesOf(() => validateConfig(doc))).to.have.deep.members([
      { path: 'shutdown_timeout_ms', message: 'expected number, received string' },
      { path: 'admin', message: 'expected object, received array' },
      { path: 'listeners.0.routes.0.respond.status', message: 'expected number, received null' },
      { path: 'listeners.0.routes.0.respond.headers', message: 'expected record, received string' },
      { path: 'listeners.1.listen', message: 'required (string)' },
    ]);
    expect(issuesOf(() => loadConfig('just a string'))).to.deep.equal([{ path: '', message: 'expected object, received string' }]);
  });

  it('accepts exactly the header values Node sends: tab, space, visible ASCII and Latin-1', () => {
    const accepts = (value: string) => {
      const doc = minimal();
      ((doc.listeners as Record<string, unknown>[])[0]!.routes as Record<string, unknown>[])[0]!.respond = { status: 200, headers: { 'x-v': value } };
      try {
        validateConfig(doc);
        return true;
      } catch {
        return false;
      }
    };
    const nodeSends = (value: string) => {
      try {
        validateHeaderValue('x-v', value);
        return true;
      } catch {
        return false;
      }
    };
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: fc.integer({ min: 0, max: 0x1ff }).map((c) => String.fromCharCode(c)) })),
        (value) => {
          expect(accepts(value), JSON.stringify(value)).to.equal(nodeSends(value));
        },
      ),
      { seed: 14, numRuns: 2000 },
    );
    for (const bad of ['a\x01b', 'del\x7f', 'check ✓', 'a\u0100', 'line\nbreak']) expect(accepts(bad), JSON.stringify(bad)).to.equal(false);
    for (const good of ['café', 'tab\there', '', ' spaced ', '\xff']) expect(accepts(good), JSON.stringify(good)).to.equal(true);
  });

  it('refuses framing headers and two spellings of one header name in a response', () => {
    const doc = minimal();
    ((doc.listeners as Record<string, unknown>[])[0]!.routes as Record<string, unknown>[])[0]!.respond = {
      status: 200,
      headers: { 'Transfer-Encoding': 'chunked', 'content-length': '5', Connection: 'close', 'X-A': '1', 'x-a': '2', 'x-ok': 'fine' },
    };
    const at = 'listeners.0.routes.0.respond.headers';
    expect(issuesOf(() => validateConfig(doc))).to.have.deep.members([
      { path: `${at}.Transfer-Encoding`, message: 'transfer-encoding frames the message and is set by hotconf; it cannot be configured' },
      { path: `${at}.content-length`, message: 'content-length frames the message and is set by hotconf; it cannot be configured' },
      { path: `${at}.Connection`, message: 'connection frames the message and is set by hotconf; it cannot be configured' },
      { path: `${at}.x-a`, message: 'duplicate header (also X-A): header names are case-insensitive' },
    ]);
  });

  it('refuses informational statuses and content on a 204, 205 or 304', () => {
    const route = (respond: Record<string, unknown>) => {
      const doc = minimal();
      ((doc.listeners as Record<string, unknown>[])[0]!.routes as Record<string, unknown>[])[0]!.respond = respond;
      return doc;
    };
    for (const status of [100, 101, 103, 199]) {
      expect(
        issuesOf(() => validateConfig(route({ status }))),
        String(status),
      ).to.deep.equal([{ path: 'listeners.0.routes.0.respond.status', message: 'must be a final status, 200-599 (a 1xx status is not a response)' }]);
    }
    for (const status of [204, 205, 304]) {
      expect(
        issuesOf(() => validateConfig(route({ status, body: 'x' }))),
        String(status),
      ).to.deep.equal([{ path: 'listeners.0.routes.0.respond.body', message: `must be empty: a ${status} response has no content` }]);
      expect(() => validateConfig(route({ status })), String(status)).to.not.throw();
    }
  });

  it('compares listener addresses as they bind: spellings of one address, and addresses that clash', () => {
    const listeners = [
      'LOCALHOST:8082',
      'localhost:8082',
      'localhost:8083',
      '127.0.0.1:8083',
      '0.0.0.0:8084',
      '127.0.0.9:8084',
      '127.0.0.1:8085',
      '[::]:8085',
      '[0:0::1]:8086',
      '[::1]:8086',
      '127.0.0.1:8087',
      '127.0.0.2:8087',
      '[::1]:8087',
      '127.0.0.1:0',
      '127.0.0.1:0',
      'localhost:9901',
    ].map((listen, i) => ({ name: `l${i}`, listen }));
    expect(issuesOf(() => validateConfig({ listeners }))).to.deep.equal([
      { path: 'listeners.1.listen', message: 'address localhost:8082 is already used by listeners.0' },
      { path: 'listeners.3.listen', message: 'address 127.0.0.1:8083 clashes with listeners.2 (localhost:8083): binding both fails' },
      { path: 'listeners.5.listen', message: 'address 127.0.0.9:8084 clashes with listeners.4 (0.0.0.0:8084): binding both fails' },
      { path: 'listeners.7.listen', message: 'address [::]:8085 clashes with listeners.6 (127.0.0.1:8085): binding both fails' },
      { path: 'listeners.9.listen', message: 'address [::1]:8086 is already used by listeners.8' },
      { path: 'listeners.15.listen', message: 'address localhost:9901 clashes with the admin address (127.0.0.1:9901): binding both fails' },
    ]);
  });

  it('refuses a host pattern that can never match a request, saying why', () => {
    const withHost = (host: string) =>
      minimal({ listeners: [{ name: 'web', listen: '127.0.0.1:8080', routes: [{ path_prefix: '/', host, respond: { status: 200 } }] }] });
    const never: [string, string][] = [
      ['*example.com', 'never matches: a wildcard is only a leading "*." before a domain (*.example.com)'],
      ['api.*.example.com', 'never matches: a wildcard is only a leading "*." before a domain (*.example.com)'],
      ['*', 'never matches: a wildcard is only a leading "*." before a domain (*.example.com)'],
      ['example.com:8080', 'never matches: the port is not part of the match (requests are matched on the host alone)'],
      ['example.com.', 'never matches: requests are matched without the trailing dot (write example.com)'],
      ['::1', 'never matches: write an IPv6 address in brackets ([::1]), as requests send it'],
      ['bücher.example', 'never matches: write an internationalised name in its ASCII form (xn--...), as requests send it'],
      ['http://example.com', 'must be a host name without scheme or path'],
      ['exa mple.com', 'must be a host name without scheme or path'],
      ['-bad-.example', '-bad-.example is not a valid host name'],
    ];
    for (const [host, message] of never) {
      expect(
        issuesOf(() => validateConfig(withHost(host))),
        host,
      ).to.deep.equal([{ path: 'listeners.0.routes.0.host', message }]);
    }
    for (const host of ['*.example.com', 'Example.COM', '[::1]', '10.0.0.1', '_svc.example', 'localhost', 'xn--bcher-kva.example']) {
      expect(() => validateConfig(withHost(host)), host).to.not.throw();
    }
  });

  it('names a target or tracing endpoint without a scheme at its path instead of throwing', () => {
    const doc = minimal({
      upstreams: { api: { targets: ['127.0.0.1:9000', 'localhost:9001', 'http://127.0.0.1:9002'] } },
      tracing: { endpoint: '127.0.0.1:4318/v1/traces' },
    });
    expect(issuesOf(() => validateConfig(doc))).to.have.deep.members([
      { path: 'upstreams.api.targets.0', message: 'must be an http:// or https:// URL, scheme included (http://127.0.0.1:9000, not 127.0.0.1:9000)' },
      { path: 'upstreams.api.targets.1', message: 'must be an http:// or https:// URL, scheme included (http://localhost:9001, not localhost:9001)' },
      {
        path: 'tracing.endpoint',
        message: 'must be an http:// or https:// URL, scheme included (http://127.0.0.1:4318/v1/traces, not 127.0.0.1:4318/v1/traces)',
      },
    ]);
    for (const [value, message] of [
      ['ftp://127.0.0.1:9000', 'must be an http:// or https:// URL'],
      ['http://', 'is not a valid URL'],
      ['http://[::1', 'is not a valid URL'],
      ['http://a b', 'is not a valid URL'],
    ]) {
      expect(
        issuesOf(() => validateConfig(minimal({ upstreams: { api: { targets: [value] } } }))),
        value,
      ).to.deep.equal([{ path: 'upstreams.api.targets.0', message }]);
      expect(
        issuesOf(() => validateConfig(minimal({ tracing: { endpoint: value } }))),
        value,
      ).to.deep.equal([{ path: 'tracing.endpoint', message }]);
    }
  });

  it('parses IPv4, bracketed IPv6 and host names as listen addresses', () => {
    expect(parseListenAddress('127.0.0.1:8080')).to.deep.equal({ host: '127.0.0.1', port: 8080 });
    expect(parseListenAddress('[::1]:0')).to.deep.equal({ host: '::1', port: 0 });
    expect(parseListenAddress('localhost:65535')).to.deep.equal({ host: 'localhost', port: 65535 });
    expect(parseListenAddress('127.0.0.1:65536')).to.have.property('error');
    expect(parseListenAddress('::1:80')).to.have.property('error');
    expect(parseListenAddress('[nope]:80')).to.have.property('error');
  });

  it('takes a host whose last label is a number for an IPv4 address, and refuses it unless it is one', () => {
    for (const host of ['256.1.1.1', '1.2.3.4.5', '1.2.3', '127.1', '12345', '010.0.0.1.', 'example.123']) {
      expect(parseListenAddress(`${host}:80`), host).to.deep.equal({
        error: `${host} is not a valid IPv4 address (a host ending in a number must be one, e.g. 127.0.0.1)`,
      });
    }
    for (const host of ['10.0.0.255', '0.0.0.0', '255.255.255.255']) expect(parseListenAddress(`${host}:80`), host).to.deep.equal({ host, port: 80 });
    // Names with digits are names: only an all-numeric last label makes an address.
    for (const host of ['1.example', 'a1.b2', 'host-1', '123abc.test']) expect(parseListenAddress(`${host}:80`), host).to.deep.equal({ host, port: 80 });
    const doc = minimal({ admin: { listen: '300.0.0.1:9901' } });
    (doc.listeners as Record<string, unknown>[])[0]!.listen = '1.2.3.4.5:8080';
    expect(issuesOf(() => validateConfig(doc))).to.have.deep.members([
      { path: 'admin.listen', message: '300.0.0.1 is not a valid IPv4 address (a host ending in a number must be one, e.g. 127.0.0.1)' },
      { path: 'listeners.0.listen', message: '1.2.3.4.5 is not a valid IPv4 address (a host ending in a number must be one, e.g. 127.0.0.1)' },
    ]);
  });

  it('refuses credentials in tracing.endpoint, pointing at tracing.headers, and never quotes them', () => {
    for (const endpoint of ['http://user:pa55word@collector:4318/v1/traces', 'https://user@collector/v1/traces', 'http://:pa55word@collector/v1/traces']) {
      const issues = issuesOf(() => validateConfig(minimal({ tracing: { endpoint } })));
      expect(issues, endpoint).to.deep.equal([
        {
          path: 'tracing.endpoint',
          message: 'must not contain credentials (user:password@): send them in tracing.headers (e.g. authorization), which are kept secret',
        },
      ]);
      expect(JSON.stringify(issues)).to.not.contain('pa55word');
    }
    expect(validateConfig(minimal({ tracing: { endpoint: 'http://collector:4318/v1/traces' } })).tracing!.endpoint).to.equal('http://collector:4318/v1/traces');
  });
});

describe('secret redaction', () => {
  const secretConfig = () =>
    loadConfig(stringify(minimal({ tracing: { exporter: 'otlp-http', headers: { authorization: 'Bearer s3cr3t-token', 'x-api-key': 'k3y-value' } } }))).config;

  it('replaces tracing header values in a copy and leaves the frozen original alone', () => {
    const config = secretConfig();
    const redacted = redactConfig(config);
    expect(redacted.tracing!.headers).to.deep.equal({ authorization: REDACTED, 'x-api-key': REDACTED });
    expect(config.tracing!.headers.authorization).to.equal('Bearer s3cr3t-token');
    expect(JSON.stringify(redacted)).to.not.contain('s3cr3t').and.not.contain('k3y-value');
  });

  it('collects secret values so free text can be scrubbed', () => {
    const secrets = secretValues(secretConfig());
    expect(secrets).to.have.members(['Bearer s3cr3t-token', 'k3y-value']);
    expect(scrubSecrets('failed with Bearer s3cr3t-token and k3y-value', secrets)).to.equal(`failed with ${REDACTED} and ${REDACTED}`);
  });
});
