import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { event, spawnHotconf } from '../../harness/child.js';
import { basicConfig, startDaemon } from '../../harness/daemon.js';
import { getText } from '../../harness/http.js';
import { metricValue } from '../../harness/metrics.js';
import { freePort } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';
import { waitFor } from '../../harness/wait.js';

describe('hardening: what tracing writes', function () {
  this.timeout(60_000);

  it('exporter: console emits each span as a span log event, so stdout stays one JSON object per line', async () => {
    const web = await freePort();
    const file = join(await tempDir(), 'hotconf.yaml');
    await writeFile(file, stringify(basicConfig({ port: web, tracing: { exporter: 'console', service_name: 'spans', batch: { scheduled_delay_ms: 20 } } })));
    const child = spawnHotconf(['run', '--config', file, '--admin', `127.0.0.1:${await freePort()}`]);
    await child.waitForLog('started', event('started'));
    for (let i = 0; i < 3; i += 1) expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('hello');
    const span = await child.waitForLog('a span event', (l) => l.msg === 'span' && l.kind === 'SERVER');
    expect(span).to.include({ component: 'tracing', level: 30 });
    expect(span.trace_id).to.match(/^[0-9a-f]{32}$/);
    expect(span.span_id).to.match(/^[0-9a-f]{16}$/);
    expect((span.attributes as Record<string, unknown>)['http.request.method']).to.equal('GET');
    child.process.kill('SIGTERM');
    expect((await child.exited).code).to.equal(0);
    const lines = child
      .stdout()
      .split('\n')
      .filter((line) => line !== '');
    const notJson = lines.filter((line) => {
      try {
        return typeof JSON.parse(line) !== 'object';
      } catch {
        return true;
      }
    });
    expect(notJson, 'stdout lines that are not one JSON object').to.deep.equal([]);
    expect(lines.filter((line) => line.includes('"msg":"span"')).length).to.be.at.least(3);
  });

  it('counts every failed span export but logs the same failure once a minute at most, at warn', async () => {
    const [web, down] = [await freePort(), await freePort()]; // nothing listens on `down`
    const tracing = { exporter: 'otlp-http', endpoint: `http://127.0.0.1:${down}/v1/traces`, batch: { scheduled_delay_ms: 20, export_timeout_ms: 1000 } };
    const t = await startDaemon(basicConfig({ port: web, tracing }));
    const failed = () => metricValue(t.admin, 'hotconf_background_errors_total', { component: 'exporter' });
    for (let i = 1; i <= 5; i += 1) {
      expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('hello');
      await waitFor(`failed export ${i} to be counted`, async () => (await failed()) >= i);
    }
    const lines = t.logs.lines().filter((l) => l.msg === 'background_error');
    expect(lines).to.have.length(1);
    expect(lines[0]).to.include({ level: 40, background: 'exporter', suppressed: 0 });
  });
});
