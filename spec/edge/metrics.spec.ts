import { X509Certificate } from 'node:crypto';
import { expect } from 'chai';
import { startDaemon } from '../../harness/daemon.js';
import { h2Session } from '../../harness/h2.js';
import { httpRequest } from '../../harness/http.js';
import { httpsRequest } from '../../harness/https.js';
import { metricValue } from '../../harness/metrics.js';
import { freePort } from '../../harness/ports.js';
import { TestCa } from '../../harness/tls.js';
import { waitFor } from '../../harness/wait.js';
import { closed, openWebSocket, WsEchoUpstream } from '../../harness/websocket.js';

describe('edge: metrics and leak report', function () {
  this.timeout(30_000);

  it('counts TLS handshakes by result, exports certificate expiry per server name, tunnels open and closed by reason, and lists tunnels and h2 sessions in /leaks', async () => {
    const ca = await TestCa.create();
    const site = await ca.issue('site', ['a.test', '*.a.test']);
    const echoUpstream = await WsEchoUpstream.start();
    const port = await freePort();
    const config = (withTunnels: boolean) => ({
      shutdown_timeout_ms: 2000,
      tunnel_close_delay_ms: 500,
      upstreams: { echo: { targets: [echoUpstream.origin] } },
      listeners: [
        {
          name: 'edge',
          listen: `127.0.0.1:${port}`,
          tls: { certificates: [{ cert_file: site.certFile, key_file: site.keyFile }], min_version: 'TLSv1.3' },
          routes: [...(withTunnels ? [{ path_prefix: '/ws', upstream: 'echo' }] : []), { path_prefix: '/', respond: { status: 200, body: 'ok' } }],
        },
      ],
    });
    const t = await startDaemon(config(true));

    expect((await httpsRequest(port, { ca: ca.caPem, servername: 'a.test' })).status).to.equal(200);
    await httpsRequest(port, { ca: ca.caPem, servername: 'a.test', maxVersion: 'TLSv1.2' }).catch(() => undefined);
    await waitFor(
      'both handshakes counted',
      async () => (await metricValue(t.admin, 'hotconf_tls_handshakes_total', { listener: 'edge', result: 'error' })) === 1,
    );
    expect(await metricValue(t.admin, 'hotconf_tls_handshakes_total', { listener: 'edge', result: 'ok' })).to.equal(1);

    const notAfter = Date.parse(new X509Certificate(site.certPem).validTo) / 1000;
    for (const name of ['a.test', '*.a.test']) {
      expect(await metricValue(t.admin, 'hotconf_tls_certificate_not_after_timestamp_seconds', { listener: 'edge', server_name: name })).to.equal(notAfter);
    }

    const sockets = await Promise.all([1, 2].map(() => openWebSocket(`wss://127.0.0.1:${port}/ws`, { ca: ca.caPem, servername: 'a.test' })));
    const { session } = await h2Session(port, ca.caPem, 'a.test');
    expect(await metricValue(t.admin, 'hotconf_tunnels_open', { listener: 'edge' })).to.equal(2);
    const leaks = JSON.parse((await httpRequest(`${t.admin}/leaks`)).body) as { handles: Record<string, number> };
    expect(leaks.handles).to.include({ Tunnel: 2, Http2Session: 1 });
    expect(await metricValue(t.admin, 'hotconf_tunnels_closed_total', { reason: 'shutdown' })).to.equal(0);

    sockets[0]!.close(1000);
    await closed(sockets[0]!);
    await waitFor('a client close counted', async () => (await metricValue(t.admin, 'hotconf_tunnels_closed_total', { reason: 'client' })) === 1);
    expect((await t.apply(config(false))).result).to.equal('applied');
    expect(await closed(sockets[1]!)).to.equal(1001);
    await waitFor('a route_changed close counted', async () => (await metricValue(t.admin, 'hotconf_tunnels_closed_total', { reason: 'route_changed' })) === 1);
    expect(await metricValue(t.admin, 'hotconf_tunnels_open', { listener: 'edge' })).to.equal(0);
    session.close();
    await waitFor('no h2 session left', async () => {
      const report = JSON.parse((await httpRequest(`${t.admin}/leaks`)).body) as { handles: Record<string, number> };
      return report.handles.Http2Session === 0 && report.handles.Tunnel === 0;
    });
  });
});
