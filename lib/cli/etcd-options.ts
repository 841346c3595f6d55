import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { z } from 'zod';
import { REDACTED } from '../config/redact.js';
import { errorMessage, FileReadError, UsageError } from '../core/errors.js';
import { readRegularFile } from '../core/regular-file.js';
import { type EtcdSourceOptions, URL_USERINFO } from '../sources/etcd/etcd.js';

/** Exit code for a command line that cannot be used (as commander's own usage errors). */
export const EXIT_USAGE = 64;

/**
 * The bootstrap section: how to reach etcd, from flags or their environment variables. It never
 * comes from the watched document (a config cannot say where to find itself).
 */
export interface EtcdCliOptions {
  /** Comma-separated client URLs (`--etcd`, `$HOTCONF_ETCD_ENDPOINTS`). */
  etcd?: string;
  /** The config key (`--key`, `$HOTCONF_ETCD_KEY`). */
  key?: string;
  /** The prefix whose keys are the config's fragments (`--prefix`, `$HOTCONF_ETCD_PREFIX`); excludes `key`. */
  prefix?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPasswordFile?: string;
}

/** The password's environment variable: never a flag, whose value `ps` would show. */
export const PASSWORD_ENV = 'HOTCONF_ETCD_PASSWORD';

/** Add the bootstrap flags (each with its environment variable) to `command`. */
export function addEtcdOptions(command: Command): Command {
  return command
    .addOption(new Option('--etcd <urls>', 'etcd client URLs, comma-separated (http://127.0.0.1:2379)').env('HOTCONF_ETCD_ENDPOINTS'))
    .addOption(new Option('--key <key>', 'etcd key holding the config document').env('HOTCONF_ETCD_KEY'))
    .addOption(new Option('--prefix <prefix>', 'etcd prefix whose every key is a fragment of the config (instead of --key)').env('HOTCONF_ETCD_PREFIX'))
    .addOption(new Option('--etcd-ca <file>', 'PEM CA bundle that verifies etcd (https endpoints)').env('HOTCONF_ETCD_CA'))
    .addOption(new Option('--etcd-cert <file>', 'PEM client certificate for etcd').env('HOTCONF_ETCD_CERT'))
    .addOption(new Option('--etcd-key <file>', 'PEM private key of --etcd-cert').env('HOTCONF_ETCD_CERT_KEY'))
    .addOption(new Option('--etcd-user <name>', `etcd user; the password comes from $${PASSWORD_ENV} or --etcd-password-file`).env('HOTCONF_ETCD_USER'))
    .addOption(new Option('--etcd-password-file <file>', 'file holding the etcd password (one line)').env('HOTCONF_ETCD_PASSWORD_FILE'));
}

const Endpoints = z
  .array(z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }))
  .min(1, 'expected at least one URL')
  .refine((urls) => new Set(urls.map((u) => u.startsWith('https:'))).size === 1, 'mixes http:// and https:// URLs');

/**
 * Resolve the bootstrap flags into `EtcdSource` connection options: split and check the URLs,
 * read the TLS files and the password. Undefined when `--etcd` is not given.
 *
 * @throws UsageError naming the flag: not exactly one of `--key` and `--prefix` (or either without `--etcd`), a URL with
 *   credentials (never quoted), a URL that is not http(s) or http mixed with https, TLS files
 *   with http:// endpoints, `--etcd-user` without a password, an unreadable file
 */
export async function etcdConnection(
  options: EtcdCliOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Pick<EtcdSourceOptions, 'endpoints' | 'key' | 'prefix' | 'tls' | 'auth'> | undefined> {
  if (options.etcd === undefined) {
    if (options.key !== undefined) throw new UsageError('--key needs --etcd (or $HOTCONF_ETCD_ENDPOINTS)');
    if (options.prefix !== undefined) throw new UsageError('--prefix needs --etcd (or $HOTCONF_ETCD_ENDPOINTS)');
    return undefined;
  }
  const urls = options.etcd
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  // Credentials in a URL would be quoted by every log line, error and /config that names the
  // endpoints: refuse them before anything quotes the flag, and without quoting them.
  const withCredentials = urls.filter((u) => URL_USERINFO.test(u)).map((u) => u.replace(URL_USERINFO, `$1${REDACTED}@`));
  if (withCredentials.length > 0) {
    throw new UsageError(
      `--etcd: ${withCredentials.join(',')}: URLs must not contain credentials (user:password@): use --etcd-user, with $${PASSWORD_ENV} or --etcd-password-file`,
    );
  }
  const parsed = Endpoints.safeParse(urls);
  if (!parsed.success) throw new UsageError(`--etcd ${options.etcd}: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  const endpoints = parsed.data;
  if (options.key !== undefined && options.prefix !== undefined)
    throw new UsageError('--key and --prefix exclude each other: one key holds the config, or every key under a prefix');
  if (options.prefix === '') throw new UsageError('--prefix must not be empty (it would take every key of the cluster)');
  if (!options.key && options.prefix === undefined) {
    throw new UsageError(
      '--etcd needs --key (or $HOTCONF_ETCD_KEY): the key holding the config, or --prefix (or $HOTCONF_ETCD_PREFIX): the prefix of its fragments',
    );
  }

  const tlsFiles = { ca: options.etcdCa, cert: options.etcdCert, key: options.etcdKey };
  let tls: EtcdSourceOptions['tls'];
  if (Object.values(tlsFiles).some((f) => f !== undefined)) {
    if (!endpoints[0]!.startsWith('https:')) throw new UsageError('--etcd-ca/--etcd-cert/--etcd-key need https:// endpoints in --etcd');
    if ((tlsFiles.cert === undefined) !== (tlsFiles.key === undefined)) throw new UsageError('--etcd-cert and --etcd-key go together');
    tls = {
      ...(tlsFiles.ca ? { ca: await readFlagFile('--etcd-ca', tlsFiles.ca) } : {}),
      ...(tlsFiles.cert ? { cert: await readFlagFile('--etcd-cert', tlsFiles.cert) } : {}),
      ...(tlsFiles.key ? { key: await readFlagFile('--etcd-key', tlsFiles.key) } : {}),
    };
  }

  let auth: EtcdSourceOptions['auth'];
  if (options.etcdUser !== undefined) {
    const password =
      options.etcdPasswordFile !== undefined
        ? (await readFlagFile('--etcd-password-file', options.etcdPasswordFile)).toString('utf8').replace(/\r?\n$/, '')
        : env[PASSWORD_ENV];
    if (!password) throw new UsageError(`--etcd-user ${options.etcdUser} needs a password: set $${PASSWORD_ENV} or --etcd-password-file`);
    auth = { username: options.etcdUser, password };
  } else if (options.etcdPasswordFile !== undefined) {
    throw new UsageError('--etcd-password-file needs --etcd-user');
  }
  const where = options.prefix !== undefined ? { prefix: options.prefix } : { key: options.key! };
  return { endpoints, ...where, ...(tls ? { tls } : {}), ...(auth ? { auth } : {}) };
}

/**
 * `--startup-timeout`: `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds. Undefined (wait
 * forever) when not given.
 * @throws UsageError for anything else
 */
export function parseDuration(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!match) throw new UsageError(`${flag} ${value}: expected a duration such as 500ms, 30s, 5m or 1h`);
  const unitMs = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Number(match[1]) * unitMs;
}

/** Largest file a flag names (PEM bundles, the password), in bytes. */
const MAX_FLAG_FILE_BYTES = 1024 * 1024;

async function readFlagFile(flag: string, file: string): Promise<Buffer> {
  try {
    return await readRegularFile(resolve(file), { maxBytes: MAX_FLAG_FILE_BYTES });
  } catch (error) {
    throw new UsageError(`${flag} ${file}: cannot read: ${error instanceof FileReadError ? error.reason : errorMessage(error)}`);
  }
}
