import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { event, type HotconfChild, spawnHotconf } from '../../harness/child.js';
import type { ClusterWorkerStatus } from '../../harness/cluster.js';
import { httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';

export interface ClusterConfigBody {
  revision: number;
  workers: ClusterWorkerStatus[];
}

/**
 * `hotconf run --workers 2 [args]` on a config file in a temp dir; resolves once it logged
 * `started` (killed after the test if still running).
 */
export async function startCluster(config: Record<string, unknown>, args: readonly string[] = []): Promise<{ p: HotconfChild; file: string; admin: string }> {
  const adminPort = await freePort();
  const file = join(await tempDir(), 'hotconf.yaml');
  await writeFile(file, stringify(config));
  const p = spawnHotconf(['run', '--config', file, '--workers', '2', '--admin', `127.0.0.1:${adminPort}`, ...args]);
  await p.waitForLog('started', event('started'), 60_000);
  return { p, file, admin: `http://127.0.0.1:${adminPort}` };
}

/** The cluster's `GET /config`: the committed revision and each worker's. */
export async function clusterConfig(admin: string): Promise<ClusterConfigBody> {
  const res = await httpRequest(`${admin}/config`);
  return JSON.parse(res.body) as ClusterConfigBody;
}

/** A request on a fresh connection, so the cluster's round-robin spreads them over the workers. */
export async function freshGet(url: string): Promise<{ status: number; body: string }> {
  const res = await httpRequest(url, { headers: { connection: 'close' } });
  return { status: res.status, body: res.body };
}
