import { expect } from 'chai';
import { startDaemon } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { httpsRequest } from '../../harness/https.js';
import { freePort } from '../../harness/ports.js';
import { TestCa } from '../../harness/tls.js';
import { validateConfig } from '../../lib/config/parse.js';
import { ConfigInvalidError } from '../../lib/core/errors.js';

function redirectConfig(port: number, routes: Record<string, unknown>[]) {
  return { shutdown_timeout_ms: 2000, listeners: [{ name: 'web', listen: `127.0.0.1:${port}`, routes }] };
}

describe('redirect routes', () => {
  it('sends HTTP to HTTPS on another port with the status asked for, path and query kept', async () => {
    const port = await freePort();
    await startDaemon(
      redirectConfig(port, [
        { path_prefix: '/moved', redirect: { location: 'https://example.com/new?x=1', status: 301 } },
        { path_prefix: '/', redirect: { scheme: 'https', port: 8443, status: 308 } },
      ]),
    );
    const res = await httpRequest(`http://127.0.0.1:${port}/a/../b/c?q=1&r=%20`, { headers: { host: 'Example.COM:8080' } });
    expect(res.status).to.equal(308);
    expect(res.headers.location).to.equal('https://example.com:8443/b/c?q=1&r=%20');
    expect(res.body).to.equal('');
    const head = await httpRequest(`http://127.0.0.1:${port}/x`, { method: 'HEAD', headers: { host: 'example.com' } });
    expect(head).to.deep.include({ status: 308 });
    expect(head.headers.location).to.equal('https://example.com:8443/x');
    const fixed = await httpRequest(`http://127.0.0.1:${port}/moved/deep?y=2`);
    expect(fixed.status).to.equal(301);
    expect(fixed.headers.location).to.equal('https://example.com/new?x=1');
  });

  it('drops the port for the default of the new scheme and keeps the request port when only the host changes', async () => {
    const port = await freePort();
    await startDaemon(
      redirectConfig(port, [
        { path_prefix: '/secure', redirect: { scheme: 'https' } },
        { path_prefix: '/', redirect: { host: 'www.example.com', status: 302 } },
      ]),
    );
    const secure = await httpRequest(`http://127.0.0.1:${port}/secure?a`, { headers: { host: 'example.com:8080' } });
    expect(secure.status).to.equal(308);
    expect(secure.headers.location).to.equal('https://example.com/secure?a');
    const www = await httpRequest(`http://127.0.0.1:${port}/p`, { headers: { host: 'example.com:8080' } });
    expect(www.status).to.equal(302);
    expect(www.headers.location).to.equal('http://www.example.com/p');
  });

  it('keeps https and the port on a TLS listener', async () => {
    const port = await freePort();
    const ca = await TestCa.create();
    const site = await ca.issue('site', ['a.test']);
    const config = redirectConfig(port, [{ path_prefix: '/', redirect: { host: 'a.test', port, status: 307 } }]);
    (config.listeners[0] as Record<string, unknown>).tls = { certificates: [{ cert_file: site.certFile, key_file: site.keyFile }] };
    await startDaemon(config);
    const res = await httpsRequest(port, { ca: ca.caPem, servername: 'a.test', path: '/z?k=v' });
    expect(res.status).to.equal(307);
    expect(res.headers.location).to.equal(`https://a.test:${port}/z?k=v`);
  });

  it('refuses a redirect with both a location and a scheme, or with neither, naming the route', () => {
    const invalid = (redirect: Record<string, unknown>) => {
      try {
        validateConfig(redirectConfig(1, [{ path_prefix: '/', redirect }]));
      } catch (error) {
        return (error as ConfigInvalidError).issues;
      }
      throw new Error('expected the config to be invalid');
    };
    expect(invalid({ location: 'https://x.test/', scheme: 'https' })).to.deep.equal([
      { path: 'listeners.0.routes.0.redirect.location', message: 'a fixed location excludes scheme, host and port' },
    ]);
    expect(invalid({ status: 301 })[0]!.path).to.equal('listeners.0.routes.0.redirect');
    expect(invalid({ scheme: 'https', status: 200 })[0]!.path).to.equal('listeners.0.routes.0.redirect.status');
    expect(() => validateConfig(redirectConfig(1, [{ path_prefix: '/', redirect: { scheme: 'https' }, respond: { status: 200 } }]))).to.throw(
      ConfigInvalidError,
      /exactly one of: respond, upstream, redirect/,
    );
  });
});
