import type { IncomingHttpHeaders } from 'node:http';
import { expect } from 'chai';
import fc from 'fast-check';
import type { UpstreamConfig } from '../../lib/config/schema.js';
import { downstreamResponseHeaders, END_TO_END, upstreamPath, upstreamRequestHeaders } from '../../lib/dataplane/proxy/headers.js';

type Forwarded = UpstreamConfig['forwarded_header'];

/** RFC 9110 section 7.6.1 plus Go's `httputil.ReverseProxy` list: what a proxy never forwards. */
const HOP_BY_HOP = [
  'connection',
  'proxy-connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
];

/** The headers hotconf itself appends after the client's. */
const ADDED_BY_PROXY = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'via', 'forwarded']);

/**
 * What `upstreamRequestHeaders` reads of an `IncomingMessage`, built from raw header pairs as
 * Node's parser would: `headers` keyed lowercase, repeated fields joined with ', ' (the function
 * reads only connection, host, x-forwarded-for, via and forwarded, which Node joins that way).
 */
function incoming(rawHeaders: string[], httpVersion = '1.1') {
  const headers: IncomingHttpHeaders = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const value = rawHeaders[i + 1]!;
    const seen = headers[name];
    headers[name] = seen === undefined ? value : `${seen}, ${value}`;
  }
  return { rawHeaders, headers, httpVersion };
}

/** `[name, value, ...]` → `[[name, value], ...]`, for readable deep-equal failures. */
function pairs(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

/** The headers sent upstream; `trusted`: the peer is one of the listener's `trusted_proxies`. */
function sent(raw: string[], clientAddress: string | undefined, forwarded: Forwarded = 'none', httpVersion = '1.1', trusted = false): [string, string][] {
  return pairs(upstreamRequestHeaders(incoming(raw, httpVersion), clientAddress, forwarded, trusted));
}

describe('upstreamRequestHeaders', () => {
  it("keeps the client's end-to-end headers in order and spelling, Host included, then appends x-forwarded-*", () => {
    expect(sent(['Host', 'example.com', 'User-Agent', 'probe/1', 'accept', '*/*', 'X-Custom', 'a'], '10.0.0.1')).to.deep.equal([
      ['Host', 'example.com'],
      ['User-Agent', 'probe/1'],
      ['accept', '*/*'],
      ['X-Custom', 'a'],
      ['x-forwarded-for', '10.0.0.1'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'example.com'],
    ]);
  });

  it('keeps repeated fields as separate lines', () => {
    expect(sent(['Host', 'h', 'Accept', 'a', 'Accept', 'b'], undefined).slice(0, 3)).to.deep.equal([
      ['Host', 'h'],
      ['Accept', 'a'],
      ['Accept', 'b'],
    ]);
  });

  it('drops every hop-by-hop header, whatever its case', () => {
    const raw = ['Host', 'h', ...HOP_BY_HOP.flatMap((name) => [name.toUpperCase(), 'x']), 'Keep', 'me'];
    expect(sent(raw, undefined)).to.deep.equal([
      ['Host', 'h'],
      ['Keep', 'me'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'h'],
    ]);
  });

  it('drops the headers the Connection header names, across repeated Connection fields', () => {
    const raw = ['Host', 'h', 'Connection', 'close, X-Secret', 'connection', ' x-other ,', 'X-Secret', '1', 'X-Other', '2', 'X-Kept', '3'];
    expect(sent(raw, undefined).map(([name]) => name)).to.deep.equal(['Host', 'X-Kept', 'x-forwarded-proto', 'x-forwarded-host']);
  });

  it("drops Expect and the client's trace context and x-forwarded-proto/host, which are replaced", () => {
    const raw = [
      'Host',
      'h',
      'Expect',
      '100-continue',
      'traceparent',
      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      'tracestate',
      'v=1',
      'X-Forwarded-Proto',
      'https',
      'X-Forwarded-Host',
      'spoofed',
    ];
    expect(sent(raw, undefined)).to.deep.equal([
      ['Host', 'h'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'h'],
    ]);
  });

  it("appends a trusted peer's address to its x-forwarded-for chain, and replaces an untrusted client's chain", () => {
    const raw = ['Host', 'h', 'X-Forwarded-For', '192.0.2.1', 'x-forwarded-for', '192.0.2.2'];
    expect(sent(raw, '10.0.0.1', 'none', '1.1', true)).to.deep.include(['x-forwarded-for', '192.0.2.1, 192.0.2.2, 10.0.0.1']);
    expect(sent(raw, undefined, 'none', '1.1', true)).to.deep.include(['x-forwarded-for', '192.0.2.1, 192.0.2.2']);
    expect(sent(raw, '10.0.0.1')).to.deep.include(['x-forwarded-for', '10.0.0.1']);
    expect(sent(raw, '10.0.0.1').filter(([name]) => name.toLowerCase() === 'x-forwarded-for')).to.have.length(1);
    expect(sent(['Host', 'h'], undefined).map(([name]) => name)).to.not.include('x-forwarded-for');
  });

  it('sets no x-forwarded-host when the request has no Host', () => {
    expect(sent([], '10.0.0.1')).to.deep.equal([
      ['x-forwarded-for', '10.0.0.1'],
      ['x-forwarded-proto', 'http'],
    ]);
  });

  describe('forwarded_header', () => {
    it("none: passes a trusted peer's Via and Forwarded through and adds neither; drops an untrusted client's Forwarded", () => {
      const raw = ['Host', 'h', 'Via', '1.0 edge', 'Forwarded', 'for=192.0.2.1'];
      expect(sent(raw, '10.0.0.1', 'none').map(([name]) => name)).to.not.include('Forwarded');
      expect(sent(raw, '10.0.0.1', 'none', '1.1', true)).to.deep.equal([
        ['Host', 'h'],
        ['Via', '1.0 edge'],
        ['Forwarded', 'for=192.0.2.1'],
        ['x-forwarded-for', '10.0.0.1'],
        ['x-forwarded-proto', 'http'],
        ['x-forwarded-host', 'h'],
      ]);
    });

    it("via: appends this hop, with the request's HTTP version, to the client's Via (RFC 9110 section 7.6.3)", () => {
      const raw = ['Host', 'h', 'Via', '1.0 edge', 'Forwarded', 'for=192.0.2.1'];
      expect(sent(raw, '10.0.0.1', 'via', '1.1', true)).to.deep.equal([
        ['Host', 'h'],
        ['Forwarded', 'for=192.0.2.1'],
        ['x-forwarded-for', '10.0.0.1'],
        ['x-forwarded-proto', 'http'],
        ['x-forwarded-host', 'h'],
        ['via', '1.0 edge, 1.1 hotconf'],
      ]);
      expect(sent(['Host', 'h'], undefined, 'via', '1.0')).to.deep.include(['via', '1.0 hotconf']);
    });

    it("forwarded: appends this hop's element to a trusted peer's Forwarded (RFC 7239), and replaces an untrusted client's", () => {
      const raw = ['Host', 'h', 'Via', '1.0 edge', 'Forwarded', 'for=192.0.2.1'];
      expect(sent(raw, '10.0.0.1', 'forwarded').at(-1)).to.deep.equal(['forwarded', 'for=10.0.0.1;host=h;proto=http']);
      expect(sent(raw, '10.0.0.1', 'forwarded', '1.1', true)).to.deep.equal([
        ['Host', 'h'],
        ['Via', '1.0 edge'],
        ['x-forwarded-for', '10.0.0.1'],
        ['x-forwarded-proto', 'http'],
        ['x-forwarded-host', 'h'],
        ['forwarded', 'for=192.0.2.1, for=10.0.0.1;host=h;proto=http'],
      ]);
    });

    it('forwarded: brackets and quotes an IPv6 client, quotes a host that is not a token, says unknown without an address', () => {
      const last = (raw: string[], address: string | undefined) => sent(raw, address, 'forwarded').at(-1);
      expect(last(['Host', 'example.com'], '::1')).to.deep.equal(['forwarded', 'for="[::1]";host=example.com;proto=http']);
      expect(last(['Host', 'example.com:8080'], '10.0.0.1')).to.deep.equal(['forwarded', 'for=10.0.0.1;host="example.com:8080";proto=http']);
      expect(last(['Host', 'a"b'], '10.0.0.1')).to.deep.equal(['forwarded', 'for=10.0.0.1;host="a\\"b";proto=http']);
      expect(last([], undefined)).to.deep.equal(['forwarded', 'for=unknown;proto=http']);
    });
  });

  it('never forwards a hop-by-hop header, nor one the Connection header names unless it is end-to-end (property)', () => {
    const hopByHop = fc
      .constantFrom(...HOP_BY_HOP)
      .chain((name) =>
        fc
          .array(fc.boolean(), { minLength: name.length, maxLength: name.length })
          .map((upper) => [...name].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join('')),
      );
    const token = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,11}$/);
    const name = fc.oneof(hopByHop, token, fc.constantFrom('Host', 'Via', 'Forwarded', 'X-Forwarded-For', 'Expect'));
    // Connection lists some of the request's own field names (in any case) and some others, over one or two fields.
    const request = fc.array(fc.tuple(name, fc.string({ maxLength: 8 })), { maxLength: 12 }).chain((fields) =>
      fc.tuple(
        fc.constant(fields),
        fc
          .tuple(fc.subarray(fields.map(([field]) => field)), fc.array(fc.oneof(token, hopByHop), { maxLength: 2 }), fc.boolean(), fc.nat())
          .map(([own, other, upper, split]) => {
            const tokens = [...own, ...other].map((t) => (upper ? t.toUpperCase() : t));
            const at = tokens.length === 0 ? 0 : split % (tokens.length + 1);
            return [tokens.slice(0, at), tokens.slice(at)].filter((part) => part.length > 0).map((part) => part.join(', '));
          }),
      ),
    );
    fc.assert(
      fc.property(
        request,
        fc.option(fc.ipV4(), { nil: undefined }),
        fc.constantFrom<Forwarded>('none', 'via', 'forwarded'),
        ([fields, connections], address, mode) => {
          const raw = [...fields.flat(), ...connections.flatMap((value) => ['Connection', value])];
          const req = incoming(raw);
          const listed = new Set(connections.flatMap((value) => value.split(',').map((t) => t.trim().toLowerCase())));
          const out = pairs(upstreamRequestHeaders(req, address, mode));
          for (const [header] of out) {
            const lower = header.toLowerCase();
            expect(HOP_BY_HOP, header).to.not.include(lower);
            if (!ADDED_BY_PROXY.has(header) && !END_TO_END.has(lower)) expect(listed.has(lower), `${header} is listed in Connection`).to.equal(false);
          }
          // What is kept of the client's headers is a subsequence of them, in order.
          const kept = out.filter(([header]) => !ADDED_BY_PROXY.has(header));
          let at = 0;
          for (const [header, value] of kept) {
            while (at < fields.length && !(fields[at]![0] === header && fields[at]![1] === value)) at += 1;
            expect(at, `${header} is one of the client's fields, in order`).to.be.below(fields.length);
            at += 1;
          }
        },
      ),
    );
  });
});

describe('downstreamResponseHeaders', () => {
  /** undici's raw form: names and values as Buffers, in the order received. */
  const raw = (...pairs: string[]) => pairs.map((v) => Buffer.from(v, 'latin1'));

  it('drops hop-by-hop headers and those the Connection header names, keeping the rest as they are, in order', () => {
    const upstream = raw(
      'Content-Type',
      'text/plain',
      'Set-Cookie',
      'a=1',
      'Connection',
      'keep-alive, X-Internal',
      'Keep-Alive',
      'timeout=5',
      'Transfer-Encoding',
      'chunked',
      'Upgrade',
      'h2c',
      'Proxy-Authenticate',
      'Basic',
      'Trailer',
      'x-checksum',
      'X-Internal',
      'secret',
      'set-cookie',
      'b=2',
      'X-Kept',
      'yes',
    );
    expect(downstreamResponseHeaders(upstream)).to.deep.equal(['content-type', 'text/plain', 'set-cookie', 'a=1', 'set-cookie', 'b=2', 'x-kept', 'yes']);
  });

  it('reads every Connection line, and never drops an end-to-end field a Connection line names', () => {
    const upstream = raw('connection', 'x-a', 'x-a', '1', 'connection', 'x-b, content-length', 'x-b', '2', 'content-length', '3', 'x-c', '4');
    expect(downstreamResponseHeaders(upstream)).to.deep.equal(['content-length', '3', 'x-c', '4']);
  });

  it('relays values byte for byte (latin1), and takes strings as well as Buffers', () => {
    const value = Buffer.from([0x61, 0xe9, 0xff]);
    expect(downstreamResponseHeaders([Buffer.from('x-bytes'), value, 'etag', '"x"'])).to.deep.equal(['x-bytes', value.toString('latin1'), 'etag', '"x"']);
    expect(Buffer.from(downstreamResponseHeaders([Buffer.from('x-bytes'), value])[1]!, 'latin1').equals(value)).to.equal(true);
  });

  it('keeps everything when there is no Connection header and nothing hop-by-hop', () => {
    const headers = ['content-type', 'application/json', 'cache-control', 'no-store'];
    expect(downstreamResponseHeaders(raw(...headers))).to.deep.equal(headers);
  });
});

describe('upstreamPath', () => {
  const target = (path: string, query = '') => ({ path, query });

  it('sends the normalised path and query unchanged without strip_prefix', () => {
    expect(upstreamPath(target('/api/users', '?page=2'), { pathPrefix: '/api', stripPrefix: false })).to.equal('/api/users?page=2');
  });

  it('removes the prefix with strip_prefix, keeping the query', () => {
    expect(upstreamPath(target('/api/users', '?page=2'), { pathPrefix: '/api', stripPrefix: true })).to.equal('/users?page=2');
  });

  it('sends / when the path is the prefix itself, and restores the leading slash a prefix ending in / took', () => {
    expect(upstreamPath(target('/api', '?q'), { pathPrefix: '/api', stripPrefix: true })).to.equal('/?q');
    expect(upstreamPath(target('/api/users'), { pathPrefix: '/api/', stripPrefix: true })).to.equal('/users');
    expect(upstreamPath(target('/users'), { pathPrefix: '/', stripPrefix: true })).to.equal('/users');
  });

  it('strips whole segments only: /apiary is not under /api and is sent as it is', () => {
    expect(upstreamPath(target('/apiary'), { pathPrefix: '/api', stripPrefix: true })).to.equal('/apiary');
    expect(upstreamPath(target('/api/x', '?q'), { pathPrefix: '/api', stripPrefix: true })).to.equal('/x?q');
    expect(upstreamPath(target('/api'), { pathPrefix: '/api', stripPrefix: true })).to.equal('/');
  });

  it('leaves a path that does not start with the prefix as it is', () => {
    expect(upstreamPath(target('/other', '?x=1'), { pathPrefix: '/api', stripPrefix: true })).to.equal('/other?x=1');
  });
});
