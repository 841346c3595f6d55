/** Where a secret reference's value sits in a config, as keys (see `ConfigReference`). */
export interface SecretLocation {
  readonly keys: readonly string[];
}

/** What a secret value is replaced with in `/config`, logs and errors. */
export const REDACTED = '[REDACTED]';

/**
 * Config paths whose values are secrets, dotted, `*` for any key or index: the one list that
 * `/config`, the reload log and error messages redact from.
 */
export const SECRET_PATHS: readonly string[] = ['tracing.headers.*'];

/**
 * A deep copy of `config` with every value at a `SECRET_PATHS` path, and every value a secret
 * reference (`${env:…}`, `${file:…}`) resolved to (at `references`), replaced by `REDACTED`.
 * The input is not modified (configs are frozen).
 */
export function redactConfig<T>(config: T, paths: readonly string[] = SECRET_PATHS, references: readonly SecretLocation[] = []): T {
  const copy = structuredClone(config) as T;
  forEachSecret(copy, paths, references, (record, key) => {
    record[key] = REDACTED;
  });
  return copy;
}

/**
 * Every secret string in `config` (the values `redactConfig` hides), so free text such as an
 * error message can be scrubbed before it is logged or returned.
 */
export function secretValues(config: unknown, paths: readonly string[] = SECRET_PATHS, references: readonly SecretLocation[] = []): string[] {
  const out: string[] = [];
  forEachSecret(config, paths, references, (record, key) => {
    const value = record[key];
    if (typeof value === 'string' && value.length > 0) out.push(value);
  });
  return [...new Set(out)];
}

/** Replace each secret (4 characters or more) occurring in `text` by `REDACTED`. */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length >= 4) out = out.split(secret).join(REDACTED);
  return out;
}

/**
 * Scrub `secrets` from an error in place: its message, its stack (which V8 renders with the
 * original message) and, recursively, its `cause` and `AggregateError` members. Returns the same
 * value, for `throw scrubError(error, secrets)`. Non-errors are returned unchanged.
 */
export function scrubError<E>(error: E, secrets: readonly string[], seen = new Set<unknown>()): E {
  if (!(error instanceof Error) || secrets.length === 0 || seen.has(error)) return error;
  seen.add(error);
  error.message = scrubSecrets(error.message, secrets);
  if (typeof error.stack === 'string') error.stack = scrubSecrets(error.stack, secrets);
  scrubError(error.cause, secrets, seen);
  if (error instanceof AggregateError) for (const inner of error.errors) scrubError(inner, secrets, seen);
  return error;
}

type Visit = (record: Record<string, unknown>, key: string) => void;

function forEachSecret(root: unknown, paths: readonly string[], references: readonly SecretLocation[], visit: Visit): void {
  for (const path of paths) walk(root, path.split('.'), visit);
  for (const { keys } of references) walk(root, [...keys], visit, false);
}

/** Visit what `segments` names under `node`; `*` is any key or index unless `wildcards` is false (literal keys). */
function walk(node: unknown, segments: string[], visit: Visit, wildcards = true): void {
  if (node === null || typeof node !== 'object' || segments.length === 0) return;
  const [head, ...rest] = segments as [string, ...string[]];
  const record = node as Record<string, unknown>;
  const keys = head === '*' && wildcards ? Object.keys(record) : Object.hasOwn(record, head) ? [head] : [];
  for (const key of keys) {
    if (rest.length === 0) visit(record, key);
    else walk(record[key], rest, visit, wildcards);
  }
}
