/**
 * Error classes with a stable `code`. Every error that crosses a module boundary is one of
 * these, so callers (the admin API, the CLI, log readers) can branch on `code` instead of
 * parsing messages.
 */

/** One problem in a config document: `path` is dotted (`listeners.0.listen`), '' for the whole document. */
export interface ConfigIssue {
  path: string;
  message: string;
  /** The fragment (file of `--config-dir`, etcd key under `--prefix`) the issue is in, for a config of several; `path` is within it. */
  origin?: string;
}

/** Issues as one line: `[origin: ]path: message` each (the message alone for the whole document), `; `-separated. */
export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues.map((i) => `${i.origin ? `${i.origin}: ` : ''}${i.path ? `${i.path}: ${i.message}` : i.message}`).join('; ');
}

/** Base class: `code` is stable across releases, `message` is for humans. */
export class HotconfError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A command line or option that cannot be used (`E_USAGE`); the message names the flag or option. */
export class UsageError extends HotconfError {
  constructor(message: string) {
    super('E_USAGE', message);
  }
}

/**
 * A config document that cannot be used: unparseable, empty, too large, or rejected by the schema.
 * `origin` names where it came from (a file path, an etcd key) and `issues` lists each problem.
 */
export class ConfigInvalidError extends HotconfError {
  readonly issues: readonly ConfigIssue[];
  readonly origin: string | undefined;
  constructor(issues: readonly ConfigIssue[], origin?: string) {
    const where = origin ? `${origin}: ` : '';
    super('E_CONFIG_INVALID', `${where}invalid config: ${formatIssues(issues)}`);
    this.issues = issues;
    this.origin = origin;
  }
}

/** A source could not produce a document (file unreadable, etcd unreachable). */
export class SourceReadError extends HotconfError {
  readonly origin: string;
  constructor(origin: string, message: string, options?: { cause?: unknown }) {
    super('E_SOURCE_READ', `${origin}: ${message}`, options);
    this.origin = origin;
  }
}

/**
 * A file hotconf was asked to read (a config file, the admin token file, a PEM file named by a
 * flag) cannot be used: missing, unreadable, not a regular file, over its size limit, or a read
 * that did not finish in time. `reason` says why without the path (`no such file or directory
 * (ENOENT)`, `is a FIFO (named pipe), not a regular file`); callers prefix what the file is for.
 */
export class FileReadError extends HotconfError {
  readonly path: string;
  readonly reason: string;
  constructor(path: string, reason: string, options?: { cause?: unknown }) {
    super('E_FILE_READ', `${path}: ${reason}`, options);
    this.path = path;
    this.reason = reason;
  }
}

/** A `FileReadError` for a file over its size limit; `sizeBytes` is its size, or a lower bound when it grew while read. */
export class FileTooLargeError extends FileReadError {
  override readonly code = 'E_FILE_TOO_LARGE';
  readonly sizeBytes: number;
  readonly maxBytes: number;
  constructor(path: string, sizeBytes: number, maxBytes: number, grew: boolean) {
    super(path, grew ? `file grew past the limit of ${maxBytes} bytes while read` : `file is ${sizeBytes} bytes; the limit is ${maxBytes} bytes`);
    this.sizeBytes = sizeBytes;
    this.maxBytes = maxBytes;
  }
}

/**
 * A source that is reachable in principle could not be asked right now (etcd down, request
 * timed out). Unlike a plain `SourceReadError` this says nothing about the document, so the
 * reloader reports `failed` rather than `invalid`; the active config keeps serving.
 */
export class SourceUnavailableError extends SourceReadError {
  override readonly code = 'E_SOURCE_UNAVAILABLE';
}

/**
 * Provisioning a generation failed: a factory threw (a port is taken, an exporter URL is bad).
 * `path` is the config path of the section whose resource failed (`listeners.1.listen`), `kind` and
 * `key` identify the resource.
 */
export class ProvisionError extends HotconfError {
  readonly path: string;
  readonly kind: string;
  readonly key: string;
  constructor(path: string, kind: string, key: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super('E_PROVISION_FAILED', `${path}: cannot provision ${kind}: ${reason}`, { cause });
    this.path = path;
    this.kind = kind;
    this.key = key;
  }
}

/** `lease.value` was read after `lease.release()`. */
export class LeaseReleasedError extends HotconfError {
  constructor(kind: string, key: string) {
    super('E_LEASE_RELEASED', `lease on ${kind} ${key} was released; its value must not be used`);
  }
}

/** `acquire` was called on a closed registry. */
export class RegistryClosedError extends HotconfError {
  constructor() {
    super('E_REGISTRY_CLOSED', 'the resource registry is closed');
  }
}

/** A resource's `create` did not settle within the registry's `createTimeoutMs`; the acquire fails. */
export class CreateTimeoutError extends HotconfError {
  constructor(kind: string, key: string, timeoutMs: number) {
    super('E_CREATE_TIMEOUT', `create of ${kind} ${key} did not finish within ${timeoutMs} ms`);
  }
}

/** A resource's `destroy` did not settle within the registry's `destroyTimeoutMs`. */
export class DestroyTimeoutError extends HotconfError {
  constructor(kind: string, key: string, timeoutMs: number) {
    super('E_DESTROY_TIMEOUT', `destroy of ${kind} ${key} did not finish within ${timeoutMs} ms`);
  }
}

/** An admin token that cannot be used: unreadable file, empty, too short. Never quotes the token. */
export class AdminTokenError extends HotconfError {
  readonly origin: string;
  constructor(origin: string, message: string, options?: { cause?: unknown }) {
    super('E_ADMIN_TOKEN', `${origin}: ${message}`, options);
    this.origin = origin;
  }
}

/** The admin API was asked to bind a non-loopback address without a token: hotconf refuses to start. */
export class AdminTokenRequiredError extends HotconfError {
  readonly listen: string;
  constructor(listen: string) {
    super(
      'E_ADMIN_TOKEN_REQUIRED',
      `admin address ${listen} is not loopback: set admin.token_file in the config or HOTCONF_ADMIN_TOKEN in the environment, or bind 127.0.0.1`,
    );
    this.listen = listen;
  }
}

/** Message of any thrown value, for logs and API bodies. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The string `code` of any thrown value (`ECONNREFUSED`, `E_PROBE_TIMEOUT`), if it has one. */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}
