import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startDaemonProcess } from '../lib/daemon-process.js';
import { servedAt, singleSocketAgent } from '../lib/http.js';
import { freePort } from '../lib/ports.js';
import { percentile, progress, round, sleep } from '../lib/util.js';

export interface ReloadFileResult {
  p50_ms: number;
  p99_ms: number;
  samples: number;
}

function config(port: number, body: string): string {
  return stringify({ listeners: [{ name: 'web', listen: `127.0.0.1:${port}`, routes: [{ path_prefix: '/', respond: { status: 200, body } }] }] });
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
  await writeFile(file, config(port, 'v0'));
  const daemon = await startDaemonProcess(['--config', file], `127.0.0.1:${admin}`);
  const agent = singleSocketAgent();
  const latencies: number[] = [];
  const tick = progress('reload_file');
  try {
    for (let i = 1; i <= samples; i++) {
      await sleep(40); // past the previous debounce, so each sample is one independent change
      const body = `v${i}`;
      await writeFile(`${file}.tmp`, config(port, body));
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
