import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { runHotconfToEnd } from '../../harness/child.js';
import { basicConfig, startDaemon } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';
import { completionScript } from '../../lib/cli/completion.js';
import { buildProgram } from '../../lib/cli/main.js';
import { configJsonSchema, fragmentJsonSchema } from '../../lib/cli/schema.js';

const run = promisify(execFile);

interface JsonSchema {
  $schema?: string;
  type?: string;
  required?: string[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  enum?: string[];
  default?: unknown;
}

/** What bash completes for the words typed so far (the last one is the word being completed). */
async function bashCompletes(script: string, words: string[]): Promise<string[]> {
  const file = join(await tempDir(), 'hotconf.bash');
  await writeFile(file, script);
  const line = words.join(' ');
  const program = [
    `source ${JSON.stringify(file)}`,
    `COMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(' ')})`,
    `COMP_CWORD=${words.length - 1}`,
    `COMP_LINE=${JSON.stringify(line)}`,
    `COMP_POINT=${line.length}`,
    '_hotconf',
    `printf '%s\\n' "\${COMPREPLY[@]}"`,
  ].join('\n');
  const { stdout } = await run('bash', ['-c', program]);
  return stdout.split('\n').filter(Boolean);
}

describe('hotconf --version, schema and completion', () => {
  it('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const { code, stdout } = await runHotconfToEnd(['--version']);
    expect(code).to.equal(0);
    expect(stdout).to.equal(`${version}\n`);
  });

  describe('schema', () => {
    it('is the JSON Schema of what a config file may say, from the zod schema', () => {
      const schema = configJsonSchema() as JsonSchema;
      expect(schema.$schema).to.equal('https://json-schema.org/draft/2020-12/schema');
      expect(schema.required).to.deep.equal(['listeners']);
      expect(schema.additionalProperties).to.equal(false);
      const tracing = schema.properties!.tracing!;
      expect(tracing.properties!.exporter!.enum).to.deep.equal(['none', 'console', 'otlp-http', 'otlp-proto', 'otlp-grpc']);
      // Input, not output: a field with a default is optional to write.
      expect(tracing.required ?? []).to.deep.equal([]);
      expect(schema.properties!.shutdown_timeout_ms).to.include({ type: 'integer', default: 10000 });
      const listener = schema.properties!.listeners!.items!;
      expect(listener.required).to.have.members(['name', 'listen']);
    });

    it('hotconf schema prints it as JSON', async () => {
      const { code, stdout } = await runHotconfToEnd(['schema']);
      expect(code).to.equal(0);
      expect(JSON.parse(stdout)).to.deep.equal(configJsonSchema());
    });

    it('--fragment: every section optional, a listener entry a definition or routes added by name', async () => {
      const schema = fragmentJsonSchema() as JsonSchema;
      expect(schema.required ?? []).to.deep.equal([]);
      expect(schema.additionalProperties).to.equal(false);
      expect(Object.keys(schema.properties!)).to.have.members(['admin', 'shutdown_timeout_ms', 'tunnel_close_delay_ms', 'tracing', 'upstreams', 'listeners']);
      // A fragment's sections carry no document defaults: the merge fills them.
      expect(schema.properties!.shutdown_timeout_ms).to.not.have.property('default');
      const entries = schema.properties!.listeners!.items!.anyOf!;
      expect(entries.map((e) => e.required)).to.have.deep.members([
        ['name', 'listen'],
        ['name', 'routes'],
      ]);
      const routesOnly = entries.find((e) => !e.required!.includes('listen'))!;
      expect(Object.keys(routesOnly.properties!)).to.have.members(['name', 'routes']);
      expect(routesOnly.additionalProperties).to.equal(false);
      const { code, stdout } = await runHotconfToEnd(['schema', '--fragment']);
      expect(code).to.equal(0);
      expect(JSON.parse(stdout)).to.deep.equal(schema);
    });
  });

  describe('completion', () => {
    const bash = completionScript(buildProgram(), 'bash');

    it('bash: completes commands, their options, option choices and file arguments', async () => {
      expect(await bashCompletes(bash, ['hotconf', 're'])).to.deep.equal(['reload']);
      expect(await bashCompletes(bash, ['hotconf', ''])).to.include.members(['run', 'validate', 'put', 'reload', 'leaks', 'schema', 'completion']);
      expect(await bashCompletes(bash, ['hotconf', 'run', '--log'])).to.deep.equal(['--log-level']);
      expect(await bashCompletes(bash, ['hotconf', 'run', '--log-level', 'w'])).to.deep.equal(['warn']);
      expect(await bashCompletes(bash, ['hotconf', 'leaks', '--'])).to.have.members(['--admin', '--token-file', '--json', '--help']);
      expect(await bashCompletes(bash, ['hotconf', 'completion', ''])).to.deep.equal(['bash', 'zsh']);
      const dir = await tempDir();
      await writeFile(join(dir, 'edge.yaml'), '');
      expect(await bashCompletes(bash, ['hotconf', 'validate', join(dir, 'ed')])).to.deep.equal([join(dir, 'edge.yaml')]);
      expect(await bashCompletes(bash, ['hotconf', 'run', '--config', join(dir, 'ed')])).to.deep.equal([join(dir, 'edge.yaml')]);
      expect(await bashCompletes(bash, ['hotconf', 'run', '--admin', ''])).to.deep.equal([]);
    });

    it('bash: the script hotconf completion prints is the one tested here', async () => {
      const { code, stdout } = await runHotconfToEnd(['completion', 'bash']);
      expect(code).to.equal(0);
      expect(stdout).to.equal(bash);
    });

    it('zsh: a #compdef function describing every command and option of the command tree', async () => {
      const { code, stdout: zsh } = await runHotconfToEnd(['completion', 'zsh']);
      expect(code).to.equal(0);
      expect(zsh.split('\n')[0]).to.equal('#compdef hotconf');
      for (const command of buildProgram().commands) {
        expect(zsh).to.include(`'${command.name()}:`);
        expect(zsh).to.include(`    ${command.name()})`);
      }
      expect(zsh).to.include("'--log-level[log level]:level:(trace debug info warn error fatal silent)'");
      expect(zsh).to.include("'--config[");
      expect(zsh).to.match(/'--config\[[^\]]*\]:file:_files'/);
      expect(zsh).to.include("'1:shell:(bash zsh)'");
    });

    it('refuses another shell with a usage error', async () => {
      const { code, stderr } = await runHotconfToEnd(['completion', 'fish']);
      expect(code).to.equal(64);
      expect(stderr).to.contain('fish').and.contain('bash, zsh');
    });
  });

  it('/healthz gives the daemon pid', async () => {
    const t = await startDaemon(basicConfig({ port: await freePort() }));
    expect(JSON.parse((await httpRequest(`${t.admin}/healthz`)).body)).to.deep.equal({ status: 'ok', generation: 1, pid: process.pid });
  });
});
