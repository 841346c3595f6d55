import { resolve } from 'node:path';
import { Etcd3 } from 'etcd3';
import { loadFragment } from '../config/fragments.js';
import { DEFAULT_MAX_DOCUMENT_BYTES } from '../config/parse.js';
import { ConfigInvalidError, errorMessage, UsageError } from '../core/errors.js';
import { etcdClientOptions } from '../sources/etcd/etcd.js';
import { EXIT_UNREACHABLE } from './admin-client.js';
import { type EtcdCliOptions, EXIT_USAGE, etcdConnection } from './etcd-options.js';
import type { Io } from './io.js';
import { checkConfig, readConfigFile } from './validate.js';

export interface PutOptions extends EtcdCliOptions {
  /** Compare-and-swap: write (delete) only if the key's mod revision is still this (0: absent). */
  ifRevision?: string;
}

/** Deadline of each etcd call, in ms. */
const REQUEST_TIMEOUT_MS = 10_000;

/** The key a command writes, how to reach etcd, and `--if-revision`, from its flags and arguments. */
interface Target {
  connection: NonNullable<Awaited<ReturnType<typeof etcdConnection>>>;
  key: string;
  /** The fragment's name under `--prefix` (undefined with `--key`). */
  name: string | undefined;
  ifRevision: number | undefined;
}

/**
 * `hotconf put --etcd URLS --key KEY FILE [--if-revision N]`: validate FILE with the daemon's
 * schema and write it to KEY, so an invalid document never reaches the fleet.
 *
 * `hotconf put --etcd URLS --prefix PREFIX NAME FILE [--if-revision N]`: write FILE as one
 * fragment of a prefix source, to the key PREFIX followed by NAME (`--prefix /hotconf/routes/
 * shop.yaml` writes `/hotconf/routes/shop.yaml`). FILE is checked as a fragment on its own
 * (`loadFragment`: every section optional, listener entries that only add routes); whether it
 * merges with the other fragments (names defined twice, upstreams no fragment defines) is the
 * daemon's check, which keeps the fragment's last good version when it does not.
 *
 * `--if-revision N` makes the write a transaction `if mod_revision(KEY) == N then put` (etcd's
 * compare-and-swap; `N = 0` means "the key does not exist"), so two operators editing from the
 * same revision cannot overwrite each other.
 *
 * Exit 0 written (the new revision on stdout); 1 invalid, over 1 MiB, or `--if-revision` did not
 * match, nothing written (the reason on stderr); 2 etcd unreachable; 64 bad flags.
 */
export async function putCommand(args: readonly string[], options: PutOptions, io: Io): Promise<number> {
  const target = await resolveTarget('put', args, 2, options, io);
  if (typeof target === 'number') return target;
  const file = args.at(-1)!;
  const { key, name, ifRevision } = target;

  const path = resolve(file);
  const text = await readConfigFile(
    path,
    io,
    (sizeBytes) =>
      `${sizeBytes} bytes; hotconf refuses config documents over 1 MiB (${DEFAULT_MAX_DOCUMENT_BYTES} bytes), below etcd's default request limit. Nothing written.`,
  );
  if (!text) return 1;
  const checked = name === undefined ? checkConfig(path, text, io) : checkFragment(path, text, io);
  if (!checked) {
    io.err(`${path}: invalid; nothing written to ${key}\n`);
    return 1;
  }
  const notes = (...more: string[]) => ` (${[...more, `hash ${checked.slice(0, 12)}`].join('; ')})`;

  return withClient(target, io, 'write to', async (client) => {
    if (ifRevision === undefined) {
      const res = await client.put(key).value(text).exec();
      io.out(`${key}: written at revision ${res.header.revision}${notes()}\n`);
      return 0;
    }
    const res = await client.if(key, 'Mod', '==', ifRevision).then(client.put(key).value(text)).else(client.get(key)).commit();
    if (!res.succeeded) return revisionMismatch(res.responses[0]?.response_range?.kvs[0]?.mod_revision, target, 'written', io);
    io.out(`${key}: written at revision ${res.header.revision}${notes(`was ${ifRevision}`)}\n`);
    return 0;
  });
}

/**
 * `hotconf delete --etcd URLS --prefix PREFIX NAME [--if-revision N]`: delete one fragment of
 * a prefix source (the key PREFIX followed by NAME): every daemon on the prefix drops exactly
 * its routes. `--key KEY` deletes a single-key config, which its daemons keep serving (a
 * deleted key is logged, not applied). `--if-revision N`: delete only while the key's mod
 * revision is N.
 *
 * Exit 0 deleted (the revision on stdout); 1 the key does not exist or `--if-revision` did not
 * match, nothing deleted; 2 etcd unreachable; 64 bad flags.
 */
export async function deleteCommand(args: readonly string[], options: PutOptions, io: Io): Promise<number> {
  const target = await resolveTarget('delete', args, 1, options, io);
  if (typeof target === 'number') return target;
  const { key, ifRevision } = target;
  return withClient(target, io, 'delete from', async (client) => {
    if (ifRevision === undefined) {
      const res = await client.delete().key(key).exec();
      if (res.deleted === '0') {
        io.err(`${key}: does not exist in etcd (revision ${res.header.revision}); nothing deleted\n`);
        return 1;
      }
      io.out(`${key}: deleted at revision ${res.header.revision}\n`);
      return 0;
    }
    const res = await client.if(key, 'Mod', '==', ifRevision).then(client.delete().key(key)).else(client.get(key)).commit();
    if (!res.succeeded) return revisionMismatch(res.responses[0]?.response_range?.kvs[0]?.mod_revision, target, 'deleted', io);
    if (res.responses[0]?.response_delete_range?.deleted === '0') {
      io.err(`${key}: does not exist in etcd; nothing deleted\n`);
      return 1;
    }
    io.out(`${key}: deleted at revision ${res.header.revision} (was ${ifRevision})\n`);
    return 0;
  });
}

/**
 * The flags and arguments of `put` (`[NAME] FILE`) or `delete` (`[NAME]`): `--prefix` takes a
 * NAME, `--key` does not. Returns the exit code after printing the problem when they cannot be used.
 */
async function resolveTarget(command: string, args: readonly string[], withName: number, options: PutOptions, io: Io): Promise<Target | number> {
  try {
    const connection = await etcdConnection(options);
    if (!connection) throw new UsageError('--etcd is required (or $HOTCONF_ETCD_ENDPOINTS)');
    let ifRevision: number | undefined;
    if (options.ifRevision !== undefined) {
      if (!/^\d+$/.test(options.ifRevision)) throw new UsageError(`--if-revision ${options.ifRevision}: expected a mod revision (0 or more)`);
      ifRevision = Number(options.ifRevision);
    }
    const usage = withName === 2 ? 'NAME FILE' : 'NAME';
    if (connection.prefix !== undefined) {
      if (args.length !== withName) throw new UsageError(`with --prefix, ${command} takes ${usage}: the fragment's name under the prefix`);
      const name = args[0]!;
      if (name === '') throw new UsageError('the fragment name must not be empty');
      return { connection, key: `${connection.prefix}${name}`, name, ifRevision };
    }
    if (args.length !== withName - 1) throw new UsageError(`with --key, ${command} takes ${withName === 2 ? 'FILE' : 'no argument'}; NAME goes with --prefix`);
    return { connection, key: connection.key!, name: undefined, ifRevision };
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`hotconf ${command}: ${error.message}\n`);
    return EXIT_USAGE;
  }
}

/** Run `call` with a client for `target`'s etcd; an etcd error is exit 2, naming the key and the endpoints. */
async function withClient(target: Target, io: Io, verb: string, call: (client: Etcd3) => Promise<number>): Promise<number> {
  const { connection, key } = target;
  const client = new Etcd3({ ...etcdClientOptions(connection), defaultCallOptions: () => ({ deadline: Date.now() + REQUEST_TIMEOUT_MS }) });
  try {
    return await call(client);
  } catch (error) {
    io.err(`${key}: cannot ${verb} etcd at ${connection.endpoints.join(',')}: ${errorMessage(error)}\n`);
    return EXIT_UNREACHABLE;
  } finally {
    client.close();
  }
}

function revisionMismatch(current: string | undefined, target: Target, verb: string, io: Io): number {
  io.err(`${target.key}: its mod revision is ${current ?? '0'}, not ${target.ifRevision} (--if-revision): changed since; nothing ${verb}\n`);
  return 1;
}

/**
 * Validate a fragment on its own (see `loadFragment`). Returns its canonical hash, or undefined
 * after printing one `FILE: PATH: MESSAGE` line per error.
 */
function checkFragment(path: string, text: Buffer, io: Io): string | undefined {
  try {
    return loadFragment(text, { origin: path }).hash;
  } catch (error) {
    if (!(error instanceof ConfigInvalidError)) throw error;
    for (const issue of error.issues) io.err(`${path}: ${issue.path || '(document)'}: ${issue.message}\n`);
    return undefined;
  }
}
