import { Command, Option } from 'commander';
import { LOG_LEVELS, type LogLevel } from '../log.js';
import { leaksCommand } from './leaks.js';
import { reloadCommand } from './reload.js';
import { runCommand } from './run.js';
import { validateCommand } from './validate.js';

const io = { out: (s: string) => void process.stdout.write(s), err: (s: string) => void process.stderr.write(s) };

/** Build the `hotconf` command line (commander). Exported for tests and embedding. */
export function buildProgram(): Command {
  const program = new Command('hotconf')
    .description('Hot-reloadable config controller with ref-counted resources')
    .showHelpAfterError()
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 64));

  program
    .command('run')
    .description('run the daemon (SIGHUP reloads, SIGTERM/SIGINT drain and stop)')
    .option('--config <file>', 'config file (YAML or JSON); default: the bundled fixtures/demo.yaml')
    .option('--no-watch', 'do not watch the file; reload only on SIGHUP or POST /reload')
    .option('--admin <host:port>', "admin API address (overrides the config's admin.listen)")
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .action(async (opts: { config?: string; watch: boolean; admin?: string; logLevel: LogLevel }) => {
      await runCommand(opts);
    });

  program
    .command('validate')
    .description('validate a config file; exit 0 valid, 1 invalid (errors on stderr)')
    .argument('<file>', 'config file')
    .action(async (file: string) => {
      process.exitCode = await validateCommand(file, io);
    });

  program
    .command('reload')
    .description('ask a running daemon to reload; exit 0 applied/unchanged, 1 otherwise, 2 unreachable or unauthorized')
    .option('--admin <url>', 'admin API URL (default: $HOTCONF_ADMIN or http://127.0.0.1:9901)')
    .option('--token-file <file>', 'file holding the admin token (default: $HOTCONF_ADMIN_TOKEN)')
    .action(async (opts: { admin?: string; tokenFile?: string }) => {
      process.exitCode = await reloadCommand(opts, io);
    });

  program
    .command('leaks')
    .description('print the leak report; exit 0 clean, 1 leak suspected, 2 daemon unreachable or unauthorized')
    .option('--admin <url>', 'admin API URL (default: $HOTCONF_ADMIN or http://127.0.0.1:9901)')
    .option('--token-file <file>', 'file holding the admin token (default: $HOTCONF_ADMIN_TOKEN)')
    .option('--json', 'print the raw JSON report')
    .action(async (opts: { admin?: string; json?: boolean; tokenFile?: string }) => {
      process.exitCode = await leaksCommand(opts, io);
    });

  return program;
}

/** Parse `argv` and run the chosen command. */
export async function main(argv: readonly string[] = process.argv): Promise<void> {
  await buildProgram().parseAsync([...argv]);
}

