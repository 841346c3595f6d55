import { Argument, Command, Option } from 'commander';
import { DEFAULT_ADMIN_LISTEN } from '../config/schema.js';
import { LOG_LEVELS } from '../core/log.js';
import { type AdminClientOptions, addAdminClientOptions } from './admin-client.js';
import { COMPLETION_SHELLS, completionCommand } from './completion.js';
import { addEtcdOptions } from './etcd-options.js';
import { processIo as io } from './io.js';
import { leaksCommand } from './leaks.js';
import { deleteCommand, type PutOptions, putCommand } from './put.js';
import { reloadCommand } from './reload.js';
import { type RunOptions, runCommand } from './run.js';
import { schemaCommand } from './schema.js';
import { validateCommand } from './validate.js';
import { packageVersion } from './version.js';

/** Build the `hotconf` command line (commander). Exported for tests and embedding. */
export function buildProgram(): Command {
  const program = new Command('hotconf')
    .description('Hot-reloadable config controller with ref-counted resources')
    .version(packageVersion())
    .showHelpAfterError()
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 64));

  const run = program
    .command('run')
    .description('run the daemon (SIGHUP reloads, SIGTERM/SIGINT drain and stop)')
    .option('--config <file>', 'config file (YAML or JSON); default: the bundled fixtures/demo.yaml')
    .option('--config-dir <dir>', 'config directory: every *.yaml, *.yml and *.json file in it is a fragment, merged by name')
    .option('--max-document-bytes <n>', 'size limit of the config file, or of each fragment (k, m, g suffixes); default 1m')
    .option('--max-total-bytes <n>', 'with --config-dir or --prefix: size limit of all fragments together (k, m, g suffixes); default 64m')
    .option('--no-watch', 'do not watch the source; reload only on SIGHUP or POST /reload')
    .option('--admin <host:port>', `admin API address (overrides the config's admin.listen; with --etcd default ${DEFAULT_ADMIN_LISTEN})`)
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .addOption(new Option('--workers <n>', 'worker processes serving traffic: a number, or auto (one per core)').env('HOTCONF_WORKERS').default('1'));
  addEtcdOptions(run)
    .addOption(
      new Option('--startup-timeout <duration>', 'with --etcd: give up waiting for the first config (500ms, 30s, 5m); default: wait forever').env(
        'HOTCONF_STARTUP_TIMEOUT',
      ),
    )
    .action(async (opts: RunOptions) => {
      await runCommand(opts);
    });

  program
    .command('validate')
    .description('validate a config file, or a config directory of fragments; exit 0 valid, 1 invalid (errors on stderr)')
    .argument('<file>', 'config file or directory')
    .action(async (file: string) => {
      process.exitCode = await validateCommand(file, io);
    });

  addEtcdOptions(
    program
      .command('put')
      .description(
        'validate a config file and write it to an etcd key (--key KEY FILE), or a fragment to PREFIX+NAME (--prefix PREFIX NAME FILE); exit 0 written, 1 not written, 2 etcd unreachable',
      )
      .argument('<name-or-file>', 'with --key: the config file (YAML or JSON); with --prefix: the fragment name under the prefix')
      .argument('[file]', 'with --prefix: the fragment file (YAML or JSON)')
      .option('--if-revision <n>', "write only if the key's mod revision is still N (0: the key must not exist)"),
  ).action(async (first: string, file: string | undefined, opts: PutOptions) => {
    process.exitCode = await putCommand(file === undefined ? [first] : [first, file], opts, io);
  });

  addEtcdOptions(
    program
      .command('delete')
      .description('delete a fragment PREFIX+NAME (--prefix PREFIX NAME), or the key (--key KEY); exit 0 deleted, 1 not deleted, 2 etcd unreachable')
      .argument('[name]', 'with --prefix: the fragment name under the prefix')
      .option('--if-revision <n>', "delete only if the key's mod revision is still N"),
  ).action(async (name: string | undefined, opts: PutOptions) => {
    process.exitCode = await deleteCommand(name === undefined ? [] : [name], opts, io);
  });

  addAdminClientOptions(
    program.command('reload').description('ask a running daemon to reload; exit 0 applied/unchanged, 1 otherwise, 2 unreachable or unauthorized'),
  ).action(async (opts: AdminClientOptions) => {
    process.exitCode = await reloadCommand(opts, io);
  });

  addAdminClientOptions(program.command('leaks').description('print the leak report; exit 0 clean, 1 leak suspected, 2 daemon unreachable or unauthorized'))
    .option('--json', 'print the raw JSON report')
    .action(async (opts: AdminClientOptions & { json?: boolean }) => {
      process.exitCode = await leaksCommand(opts, io);
    });

  program
    .command('schema')
    .description("print the config's JSON Schema (for editors: # yaml-language-server: $schema=FILE)")
    .option('--fragment', 'the schema of one fragment of --config-dir or an etcd --prefix instead')
    .action((opts: { fragment?: boolean }) => {
      process.exitCode = schemaCommand(io, opts);
    });

  program
    .command('completion')
    .description('print a shell completion script')
    .addArgument(new Argument('<shell>', 'the shell').choices(COMPLETION_SHELLS))
    .action((shell: string) => {
      process.exitCode = completionCommand(program, shell, io);
    });

  return program;
}

/** Parse `argv` and run the chosen command. */
export async function main(argv: readonly string[] = process.argv): Promise<void> {
  await buildProgram().parseAsync([...argv]);
}
