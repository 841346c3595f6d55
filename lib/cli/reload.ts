import type { ReloadResult } from '../reload/reloader.js';
import { type AdminClientOptions, adminBaseUrl, callAdmin, cliAdminToken, EXIT_UNREACHABLE, isAdminCallError } from './admin-client.js';
import type { Io } from './io.js';

/**
 * `hotconf reload [--admin URL] [--token-file FILE]`: `POST /reload` on a running daemon. Exit 0
 * when the result is applied or unchanged (its warnings on stderr), 1 when invalid or failed (errors on stderr), 2 when
 * the daemon is unreachable or refuses the token.
 */
export async function reloadCommand(options: AdminClientOptions, io: Io): Promise<number> {
  const base = adminBaseUrl(options.admin);
  let body: Partial<ReloadResult>;
  try {
    ({ body } = (await callAdmin(base, 'POST', '/reload', { token: await cliAdminToken(options.tokenFile) })) as { body: typeof body });
  } catch (error) {
    if (!isAdminCallError(error)) throw error;
    io.err(`${error.message}\n`);
    return EXIT_UNREACHABLE;
  }
  if (body.result === 'applied' || body.result === 'unchanged') {
    io.out(`${body.result} (generation ${body.generation})\n`);
    for (const w of body.warnings ?? []) io.err(`warning: ${w.path}: ${w.message}\n`);
    // A config of several fragments: the refused ones keep their last good version.
    for (const e of body.errors ?? []) io.err(`refused, last good version kept: ${e.origin ? `${e.origin}: ` : ''}${e.path || '(document)'}: ${e.message}\n`);
    return 0;
  }
  io.err(`reload ${body.result ?? 'failed'} (generation ${body.generation ?? '?'} keeps serving)\n`);
  for (const e of body.errors ?? []) io.err(`  ${e.origin ? `${e.origin}: ` : ''}${e.path || '(document)'}: ${e.message}\n`);
  if (body.error) io.err(`  ${body.error}\n`);
  return 1;
}
