/** Where the admin API is when `--admin` is not given: `HOTCONF_ADMIN`, else the default address. */
export const DEFAULT_ADMIN = 'http://127.0.0.1:9901';

/** Exit code for "the daemon could not be reached". */
export const EXIT_UNREACHABLE = 2;

/** `--admin` value (`http://host:port` or `host:port`) → base URL without trailing slash. */
export function adminBaseUrl(option: string | undefined): string {
  const value = option ?? process.env.HOTCONF_ADMIN ?? DEFAULT_ADMIN;
  const url = /^https?:\/\//i.test(value) ? value : `http://${value}`;
  return url.replace(/\/+$/, '');
}

/** The daemon did not answer (connection refused, timeout). */
export class AdminUnreachableError extends Error {
  readonly code = 'E_ADMIN_UNREACHABLE';
}

/**
 * Call the admin API and parse its JSON body, whatever the status.
 * @throws AdminUnreachableError when no HTTP response arrives within `timeoutMs` (default 30000)
 */
export async function callAdmin(base: string, method: 'GET' | 'POST', path: string, timeoutMs = 30_000): Promise<{ status: number; body: unknown }> {
  let response: Response;
  try {
    response = await fetch(`${base}${path}`, { method, signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    throw new AdminUnreachableError(`cannot reach the hotconf admin API at ${base}: ${cause}`);
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
