import { expect } from 'chai';
import fc from 'fast-check';
import { normalizeHost, normalizeTarget } from '../../lib/dataplane/route/normalize.js';

describe('normalizeTarget', () => {
  it('splits an origin-form target into path and query', () => {
    expect(normalizeTarget('/a/b?x=1&y=2')).to.deep.equal({ path: '/a/b', query: '?x=1&y=2' });
    expect(normalizeTarget('/')).to.deep.equal({ path: '/', query: '' });
  });

  it('removes dot segments, plain or percent-encoded in either case, never above the root', () => {
    expect(normalizeTarget('/api/../admin')).to.deep.equal({ path: '/admin', query: '' });
    expect(normalizeTarget('/api/%2e%2e/admin')).to.deep.equal({ path: '/admin', query: '' });
    expect(normalizeTarget('/api/%2E%2E/admin')).to.deep.equal({ path: '/admin', query: '' });
    expect(normalizeTarget('/./a/%2e/b')).to.deep.equal({ path: '/a/b', query: '' });
    expect(normalizeTarget('/../../x')).to.deep.equal({ path: '/x', query: '' });
    expect(normalizeTarget('/a/..')).to.deep.equal({ path: '/', query: '' });
  });

  it('keeps an encoded slash encoded (it is not a segment boundary)', () => {
    expect(normalizeTarget('/a/%2f../b')).to.deep.equal({ path: '/a/%2f../b', query: '' });
  });

  it('treats a backslash as a slash, as WHATWG URL parsing does, and keeps every other byte as sent', () => {
    expect(normalizeTarget('/a\\b')).to.deep.equal({ path: '/a/b', query: '' });
    expect(normalizeTarget('/a b')).to.deep.equal({ path: '/a b', query: '' });
  });

  it('reads //x as a path, never as a host, and merges its slashes', () => {
    expect(normalizeTarget('//x/y')).to.deep.equal({ path: '/x/y', query: '' });
  });

  it('refuses a fragment (it cannot appear in a request target) and keeps an empty query as sent', () => {
    expect(normalizeTarget('/a?b#c')).to.equal(undefined);
    expect(normalizeTarget('/a#c')).to.equal(undefined);
    expect(normalizeTarget('/a?')).to.deep.equal({ path: '/a', query: '?' });
  });

  it('takes the path, query and authority of an absolute-form http(s) target, whatever the scheme case (RFC 9112 section 3.2.2)', () => {
    expect(normalizeTarget('http://example.com/a/../b?q=1')).to.deep.equal({ path: '/b', query: '?q=1', authority: 'example.com' });
    expect(normalizeTarget('HTTPS://example.com/x')).to.deep.equal({ path: '/x', query: '', authority: 'example.com' });
    expect(normalizeTarget('http://example.com')).to.deep.equal({ path: '/', query: '', authority: 'example.com' });
  });

  it('returns undefined for a target that is not a path', () => {
    for (const target of [undefined, '', '*', 'garbage', 'example.com/a', 'ftp://example.com/a', 'http://[bad']) {
      expect(normalizeTarget(target), String(target)).to.equal(undefined);
    }
  });

  it('is idempotent on its own output (property)', () => {
    const piece = fc.constantFrom('/', '//', '.', '..', '%2e', '%2E', '%2f', '%25', '%', '?', '#', '&', '=', 'a', 'Z', ' ', '\\', 'é', '~', ';');
    const target = fc.oneof(
      fc.array(piece, { maxLength: 16 }).map((pieces) => `/${pieces.join('')}`),
      fc.string({ unit: 'binary', maxLength: 24 }).map((s) => `/${s}`),
    );
    fc.assert(
      fc.property(target, (raw) => {
        const once = normalizeTarget(raw);
        if (once === undefined) return;
        expect(normalizeTarget(once.path + once.query)).to.deep.equal(once);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('normalizeHost', () => {
  it('lowercases, trims, and drops the port and a trailing dot', () => {
    expect(normalizeHost('Example.COM')).to.equal('example.com');
    expect(normalizeHost('  example.com  ')).to.equal('example.com');
    expect(normalizeHost('example.com:8080')).to.equal('example.com');
    expect(normalizeHost('example.com.')).to.equal('example.com');
    expect(normalizeHost('Example.com.:80')).to.equal('example.com');
  });

  it('keeps a bracketed IPv6 literal with its brackets, without the port', () => {
    expect(normalizeHost('[::1]:8080')).to.equal('[::1]');
    expect(normalizeHost('[2001:DB8::1]')).to.equal('[2001:db8::1]');
  });

  it('returns undefined when nothing is left of the header', () => {
    for (const header of [undefined, '', ':80', '.', '[::1']) expect(normalizeHost(header), String(header)).to.equal(undefined);
  });

  it('cuts at the last colon when there are no brackets', () => {
    expect(normalizeHost('a:b:c')).to.equal('a:b');
  });

  it('maps any spelling of a domain, with or without a port and a trailing dot, to the lowercase domain (property)', () => {
    const spelling = fc.record({
      domain: fc.domain(),
      upper: fc.array(fc.boolean(), { maxLength: 64 }),
      port: fc.option(fc.integer({ min: 0, max: 65_535 }), { nil: undefined }),
      dot: fc.boolean(),
    });
    fc.assert(
      fc.property(spelling, ({ domain, upper, port, dot }) => {
        const cased = [...domain].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join('');
        const header = `${cased}${dot ? '.' : ''}${port === undefined ? '' : `:${port}`}`;
        expect(normalizeHost(header)).to.equal(domain.toLowerCase());
      }),
    );
  });
});
