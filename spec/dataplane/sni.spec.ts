import type { SecureContext } from 'node:tls';
import { expect } from 'chai';
import { upstreamRequestHeaders } from '../../lib/dataplane/proxy/headers.js';
import { namesCover, SniTable } from '../../lib/dataplane/serve/sni.js';
import type { CertificateMaterial } from '../../lib/net/tls-files.js';
import type { TlsCertificate } from '../../lib/resources/tls-certificate.js';

function certificate(fingerprint256: string, names: string[]): TlsCertificate {
  const material = {
    path: 'x',
    certPem: Buffer.alloc(0),
    keyPem: Buffer.alloc(0),
    names,
    notAfterMs: 0,
    fingerprint256,
    digest: fingerprint256,
  } as CertificateMaterial;
  return { context: {} as SecureContext, material };
}

describe('SNI table', () => {
  const first = certificate('A', ['a.test', '*.a.test']);
  const second = certificate('B', ['b.test', 'a.test', '*.wild.test']);
  const table = new SniTable([first, second]);

  it('finds the exact name first, then a one-label wildcard, then the first certificate', () => {
    expect(table.lookup('b.test')).to.equal(second);
    expect(table.lookup('B.TEST.')).to.equal(second);
    expect(table.lookup('a.test'), 'the earlier certificate wins a shared name').to.equal(first);
    expect(table.lookup('x.wild.test')).to.equal(second);
    expect(table.lookup('x.y.wild.test'), 'one label only').to.equal(first);
    expect(table.lookup('wild.test'), 'a wildcard does not name its parent').to.equal(first);
    expect(table.lookup('nothing.example')).to.equal(first);
    expect(table.byFingerprint('B')).to.equal(second);
    expect(table.byFingerprint('C')).to.equal(undefined);
  });

  it('covers a host by exact name or one-label wildcard', () => {
    expect(namesCover(['a.test', '*.b.test'], 'a.test')).to.equal(true);
    expect(namesCover(['a.test', '*.b.test'], 'x.b.test')).to.equal(true);
    expect(namesCover(['a.test', '*.b.test'], 'x.y.b.test')).to.equal(false);
    expect(namesCover(['a.test', '*.b.test'], 'b.test')).to.equal(false);
    expect(namesCover([], 'a.test')).to.equal(false);
  });

  it('refuses an empty table', () => {
    expect(() => new SniTable([])).to.throw(/needs a certificate/);
  });
});

describe('upstream headers of an HTTP/2 request', () => {
  it('drops pseudo-headers, sends :authority as Host and the scheme as the forwarded proto', () => {
    const req = {
      rawHeaders: [':method', 'GET', ':path', '/x', ':authority', 'a.test', ':scheme', 'https', 'accept', '*/*'],
      headers: { ':method': 'GET', ':path': '/x', ':authority': 'a.test', ':scheme': 'https', accept: '*/*' },
      httpVersion: '2.0',
    };
    expect(upstreamRequestHeaders(req, '10.0.0.1', 'forwarded', false, undefined, 'https')).to.deep.equal([
      'accept',
      '*/*',
      'host',
      'a.test',
      'x-forwarded-for',
      '10.0.0.1',
      'x-forwarded-proto',
      'https',
      'x-forwarded-host',
      'a.test',
      'forwarded',
      'for=10.0.0.1;host=a.test;proto=https',
    ]);
  });
});
