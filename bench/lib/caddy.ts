import { httpRequest } from '../../harness/http.js';

/** Reload Caddy with `config` through its admin `/load`. @throws Error on a non-200 answer */
export async function caddyLoad(admin: number, config: string): Promise<void> {
  const { status, body } = await httpRequest(`http://127.0.0.1:${admin}/load`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: config,
  });
  if (status !== 200) throw new Error(`caddy /load: ${status} ${body}`);
}
