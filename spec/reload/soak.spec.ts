import { expect } from 'chai';
import { basicConfig, startDaemon } from '../../harness/daemon.js';
import { handleCount, openFds } from '../../harness/handles.js';
import { getText } from '../../harness/http.js';
import { OtlpReceiver } from '../../harness/otlp-receiver.js';
import { freePort } from '../../harness/ports.js';
import { waitFor } from '../../harness/wait.js';

describe('500 reloads', () => {
  it('keep one tracer provider, one listener, one live generation, and flat fds and handles', async function () {
    this.timeout(120_000);
    const receiver = await OtlpReceiver.start();
    const port = await freePort();
    const tracing = { exporter: 'otlp-http', endpoint: receiver.url, batch: { scheduled_delay_ms: 20 } };
    const t = await startDaemon(basicConfig({ port, body: 'r0', tracing }));
    const settle = async () => {
      await waitFor('old generations to be released', () => t.daemon.reloader.generations().length === 1);
      global.gc?.();
    };
    // Warm up so lazily opened things (the exporter's connection, fs watchers) exist before the baseline.
    for (let i = 1; i <= 20; i++) await t.apply(basicConfig({ port, body: `r${i}`, tracing }));
    await getText(`http://127.0.0.1:${port}/`);
    await settle();
    const fdsBefore = openFds();
    const handlesBefore = handleCount();

    for (let i = 21; i <= 520; i++) {
      const result = await t.apply(basicConfig({ port, body: `r${i}`, tracing }));
      expect(result.result).to.equal('applied');
      if (i % 50 === 0) expect(await getText(`http://127.0.0.1:${port}/`)).to.equal(`r${i}`);
    }
    await settle();
    const fdsAfter = openFds();
    const handlesAfter = handleCount();
    console.log(
      `      500 reloads: fds ${fdsBefore} → ${fdsAfter}, handles ${handlesBefore} → ${handlesAfter}, exporter connections opened ${receiver.connectionsOpened}`,
    );

    const stats = t.daemon.registry.stats();
    expect(stats.tracer_provider).to.include({ created: 1, live: 1, refs: 1, destroyed: 0 });
    expect(stats.listener).to.include({ created: 1, live: 1, refs: 1, destroyed: 0 });
    expect(t.daemon.reloader.active!.id).to.equal(521);
    expect(t.daemon.reloader.generations()).to.have.length(1);
    expect(fdsAfter - fdsBefore).to.be.at.most(2);
    expect(handlesAfter - handlesBefore).to.be.at.most(2);
    expect(receiver.connectionsOpened).to.be.at.most(2);
    expect(t.daemon.leaks()).to.include({ ok: true, generations_live: 1 });
  });
});
