import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { basicConfig } from '../../harness/daemon.js';
import { freePort } from '../../harness/ports.js';
import { sleep } from '../../harness/wait.js';
import { startDaemonProcess } from '../lib/daemon-process.js';
import { servedAt, singleSocketAgent } from '../lib/http.js';
import { percentile, progress, round } from '../lib/util.js';

export interface ReloadFileResult {
  p50_ms: number;
  p99_ms: number;
  samples: number;
}

/**
 * File change → served: a `hotconf run --config FILE` child process watches FILE; each sample
 * atomically replaces FILE (write a temp file, rename over) and polls the listener every
 * millisecond over one keepalive connection until the new body is served.
 */
export async function reloadFilePart(quick: boolean): Promise<ReloadFileResult> {
  const samples = quick ? 50 : 200;
  const dir = await mkdtemp(join(tmpdir(), 'hotconf-bench-'));
  const file = join(dir, 'hotconf.yaml');
  const [port, admin] = [await freePort(), await freePort()];
  await writeFile(file, stringify(basicConfig({ port, body: 'v0' })));
  const daemon = await startDaemonProcess(['--config', file], `127.0.0.1:${admin}`);
  const agent = singleSocketAgent();
  const latencies: number[] = [];
  const tick = progress('reload_file');
  try {
    for (let i = 1; i <= samples; i++) {
      await sleep(40); // past the previous debounce, so each sample is one independent change
      const body = `v${i}`;
      // Not writeConfigAtomic: the clock starts at the rename, the change itself.
      await writeFile(`${file}.tmp`, stringify(basicConfig({ port, body })));
      const started = performance.now();
      await rename(`${file}.tmp`, file);
      latencies.push((await servedAt(`http://127.0.0.1:${port}/`, body, agent, started)) - started);
      tick(i, samples);
    }
  } finally {
    agent.destroy();
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return { p50_ms: round(percentile(latencies, 50)), p99_ms: round(percentile(latencies, 99)), samples };
}
