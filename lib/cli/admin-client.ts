import type { Command } from 'commander';
import { ADMIN_TOKEN_ENV, checkAdminToken, readAdminTokenFile } from '../admin/token.js';
import { DEFAULT_ADMIN_LISTEN } from '../config/schema.js';
import { AdminTokenError, HotconfError } from '../core/errors.js';

/** Where the admin API is when `--admin` is not given: `HOTCONF_ADMIN`, else the default address. */
export const DEFAULT_ADMIN = `http://${DEFAULT_ADMIN_LISTEN}`;

/** Exit code for "the daemon could not be reached". */
export const EXIT_UNREACHABLE = 2;

/** The flags of the commands that call a running daemon (`reload`, `leaks`). */
export interface AdminClientOptions {
  /** `--admin`: see `adminBaseUrl`. */
  admin?: string;
  /** `--token-file`: see `cliAdminToken`. */
  tokenFile?: string;
}

/** Add `--admin` and `--token-file` to `command`. */
export function addAdminClientOptions(command: Command): Command {
  return command
    .option('--admin <url>', `admin API URL (default: $HOTCONF_ADMIN or ${DEFAULT_ADMIN})`)
    .option('--token-file <file>', `file holding the admin token (default: $${ADMIN_TOKEN_ENV})`);
}

/** `--admin` value (`http://host:port` or `host:port`) → base URL without trailing slash. */
export function adminBaseUrl(option: string | undefined): string {
  const value = option ?? process.env.HOTCONF_ADMIN ?? DEFAULT_ADMIN;
  const url = /^https?:\/\//i.test(value) ? value : `http://${value}`;
  return url.replace(/\/+$/, '');
}

/** The daemon did not answer (connection refused, timeout). */
export class AdminUnreachableError extends HotconfError {
  constructor(message: string) {
    super('E_ADMIN_UNREACHABLE', message);
  }
}

/** The admin API answered 401: no token, or not the daemon's. */
export class AdminUnauthorizedError extends HotconfError {
  constructor(message: string) {
    super('E_ADMIN_UNAUTHORIZED', message);
  }
}

/** Errors that mean "no answer from the daemon" for the CLI (exit 2): unreachable, 401, unusable token. */
export function isAdminCallError(error: unknown): error is Error {
  return error instanceof AdminUnreachableError || error instanceof AdminUnauthorizedError || error instanceof AdminTokenError;
}

/**
 * The token the CLI sends: read from `tokenFile` (`--token-file`), else `$HOTCONF_ADMIN_TOKEN`,
 * else none; the daemon reads its token the same way.
 * @throws AdminTokenError naming the file or the variable when the token is unusable
 */
export async function cliAdminToken(tokenFile: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (tokenFile !== undefined) return readAdminTokenFile(tokenFile);
  const fromEnv = env[ADMIN_TOKEN_ENV];
  return fromEnv === undefined ? undefined : checkAdminToken(fromEnv, ADMIN_TOKEN_ENV);
}

/**
 * Call the admin API and parse its JSON body, whatever the status (but 401). `token` is sent as
 * `Authorization: Bearer`.
 * @throws AdminUnreachableError when no HTTP response arrives within `timeoutMs` (default 30000)
 * @throws AdminUnauthorizedError when the daemon answers 401
 */
export async function callAdmin(
  base: string,
  method: 'GET' | 'POST',
  path: string,
  options: { token?: string; timeoutMs?: number } = {},
): Promise<{ status: number; body: unknown }> {
  let response: Response;
  try {
    const headers: Record<string, string> = options.token === undefined ? {} : { authorization: `Bearer ${options.token}` };
    response = await fetch(`${base}${path}`, { method, headers, signal: AbortSignal.timeout(options.timeoutMs ?? 30_000) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    throw new AdminUnreachableError(`cannot reach the hotconf admin API at ${base}: ${cause}`);
  }
  if (response.status === 401) {
    await response.body?.cancel();
    const why = options.token === undefined ? 'it needs a token' : 'it refused the token';
    throw new AdminUnauthorizedError(`the hotconf admin API at ${base} answered 401 (${why}): pass --token-file FILE or set ${ADMIN_TOKEN_ENV}`);
  }
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, body };
}
