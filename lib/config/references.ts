import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { ConfigInvalidError, type ConfigIssue, errorCode, FileReadError } from '../core/errors.js';
import { readRegularFileSync } from '../core/regular-file.js';

/**
 * One secret reference a config held, as resolved: where it was and what it named, never the
 * value. Crosses threads and processes (the parser's worker, cluster IPC), hence a schema.
 */
export const ConfigReferenceSchema = z.strictObject({
  /** Config path of the value, dotted (`tracing.headers.authorization`), as errors name it. */
  path: z.string(),
  /** The same path as keys, for lookups (a header name may hold a dot). */
  keys: z.array(z.string()),
  /** `env`: an environment variable; `file`: a file's contents. */
  kind: z.enum(['env', 'file']),
  /** The variable's name, or the file's absolute path. */
  name: z.string(),
});
export type ConfigReference = z.infer<typeof ConfigReferenceSchema>;

/** Largest file a `${file:/path}` reference may name, in bytes (a token, a password, a key: far less). */
export const MAX_REFERENCED_FILE_BYTES = 64 * 1024;

/** Where references are resolved from: an environment and a file reader. */
export interface ReferenceReader {
  /** Variables by name, as `process.env` holds them. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /**
   * The bytes of the file at `path` (absolute), at most `MAX_REFERENCED_FILE_BYTES`.
   * @throws FileReadError (its `reason` is shown) or any error (shown by its code)
   */
  readFile(path: string): Buffer;
}

/** Parsed data with every reference replaced by its value, and the references it held, in document order. */
export interface ResolvedReferences {
  readonly data: unknown;
  readonly references: readonly ConfigReference[];
}

/**
 * The process's environment and its files, read synchronously (`readRegularFileSync`: regular
 * files only, at most `MAX_REFERENCED_FILE_BYTES`); what `loadConfig` uses unless given another.
 * Blocks its thread while it reads: the daemon parses on its `ConfigParser`'s worker thread.
 */
export const PROCESS_READER: ReferenceReader = Object.freeze({
  env: process.env,
  readFile: (path: string) => readRegularFileSync(path, { maxBytes: MAX_REFERENCED_FILE_BYTES }),
});

const REFERENCE = /^\$\{(env|file):(.*)\}$/s;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Resolve the secret references of parsed config data, after parsing and before validation
 * (the schema sees the values). A string value that is exactly `${env:NAME}` becomes the
 * variable's value; exactly `${file:/path}` (an absolute path) becomes the file's contents,
 * decoded as UTF-8, less one trailing newline (`\n` or `\r\n`: secret files written by
 * `echo`, Docker and Kubernetes commonly end with one). Anywhere in a string value, `$${`
 * stands for a literal `${`; any other `${` (a reference inside a longer value, an unknown
 * scheme) is refused, so a value meant as a reference is never sent as its literal text. Map
 * keys are not resolved. The syntax and the escape follow Docker Compose's interpolation,
 * narrowed to whole values as Kubernetes' `valueFrom` is.
 *
 * Pure but for `reader`: the input is not modified (a new tree is returned; YAML aliases are
 * expanded, each copy resolved at its own path). An unset variable (set but empty is a value)
 * and a file that cannot be read are issues at the value's config path naming the reference,
 * never a value.
 *
 * @throws ConfigInvalidError with one issue per bad reference (`origin` as given)
 */
export function resolveReferences(data: unknown, origin: string | undefined, reader: ReferenceReader): ResolvedReferences {
  const references: ConfigReference[] = [];
  const issues: ConfigIssue[] = [];
  const ancestors = new Set<object>();
  const visit = (node: unknown, keys: string[]): unknown => {
    if (typeof node === 'string') return resolveString(node, keys, reader, references, issues);
    // A cyclic graph (YAML aliases can make one) is left for validation to refuse.
    if (node === null || typeof node !== 'object' || ancestors.has(node)) return node;
    ancestors.add(node);
    try {
      if (Array.isArray(node)) return node.map((item, i) => visit(item, [...keys, String(i)]));
      // fromEntries defines own properties: a `__proto__` key stays a key, for validation to refuse.
      return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, visit(value, [...keys, key])]));
    } finally {
      ancestors.delete(node);
    }
  };
  const resolved = visit(data, []);
  if (issues.length > 0) throw new ConfigInvalidError(issues, origin);
  return { data: resolved, references };
}

function resolveString(value: string, keys: string[], reader: ReferenceReader, references: ConfigReference[], issues: ConfigIssue[]): string {
  if (!value.includes('${')) return value;
  const path = keys.join('.');
  const match = REFERENCE.exec(value);
  if (match) {
    const kind = match[1] as ConfigReference['kind'];
    const name = match[2]!;
    const resolved = kind === 'env' ? readEnv(name, reader) : readFileValue(name, reader);
    if (typeof resolved !== 'string') {
      issues.push({ path, message: `${value}: ${resolved.problem}` });
      return value;
    }
    references.push({ path, keys, kind, name });
    return resolved;
  }
  const parts = value.split('$${');
  if (parts.some((part) => part.includes('${'))) {
    issues.push({
      path,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the message shows the reference syntax
      message: 'a reference must be the whole value, `${env:NAME}` or `${file:/path}`; write `$${` for a literal `${`',
    });
    return value;
  }
  return parts.join('${');
}

function readEnv(name: string, reader: ReferenceReader): string | { problem: string } {
  if (!ENV_NAME.test(name)) return { problem: 'not a variable name (letters, digits and _, not starting with a digit)' };
  const value = reader.env[name];
  return value === undefined ? { problem: `environment variable ${name} is not set` } : value;
}

function readFileValue(path: string, reader: ReferenceReader): string | { problem: string } {
  if (!isAbsolute(path) || path.includes('\0')) return { problem: 'the file must be an absolute path' };
  let bytes: Buffer;
  try {
    bytes = reader.readFile(path);
  } catch (error) {
    if (error instanceof FileReadError) return { problem: error.reason };
    return { problem: `cannot read (${errorCode(error) ?? 'error'})` };
  }
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    return { problem: 'the file is not UTF-8 text' };
  }
  return text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text;
}
