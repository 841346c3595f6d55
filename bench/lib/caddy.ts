import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { httpRequest } from '../../harness/http.js';
import { waitServing } from './daemon-process.js';
import { requireTool } from './util.js';

/** Start `caddy run` on a JSON config written into `dir` (its own HOME and data dirs); resolves once `probeUrl` answers 200. */
export async function startCaddy(dir: string, config: string, probeUrl: string): Promise<ChildProcess> {
  const caddyBin = requireTool('caddy', 'apt-get install -y caddy');
  const file = join(dir, 'caddy.json');
  await writeFile(file, config);
  const caddy = spawn(caddyBin, ['run', '--config', file], {
    stdio: ['ignore', 'ignore', 'ignore'],
    env: { ...process.env, HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config') },
  });
  await waitServing(caddy, 'caddy', probeUrl);
  return caddy;
}

/** Reload Caddy with `config` through its admin `/load`. @throws Error on a non-200 answer */
export async function caddyLoad(admin: number, config: string): Promise<void> {
  const { status, body } = await httpRequest(`http://127.0.0.1:${admin}/load`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: config,
  });
  if (status !== 200) throw new Error(`caddy /load: ${status} ${body}`);
}
