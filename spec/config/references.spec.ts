// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these specs are about `${env:NAME}` and `${file:/path}` strings
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { tempDir } from '../../harness/tmp.js';
import { loadConfig } from '../../lib/config/parse.js';
import { REDACTED, redactConfig, SECRET_PATHS, secretValues } from '../../lib/config/redact.js';
import { MAX_REFERENCED_FILE_BYTES, PROCESS_READER, type ReferenceReader, resolveReferences } from '../../lib/config/references.js';
import { ConfigInvalidError } from '../../lib/core/errors.js';

/** `${env:NAME}` and `${file:/path}`, written without a template literal's own `${`. */
const envRef = (name: string) => `$\{env:${name}}`;
const fileRef = (path: string) => `$\{file:${path}}`;

/** The process's file reader with `env` as the environment. */
const reader = (env: Record<string, string> = {}): ReferenceReader => ({ env, readFile: PROCESS_READER.readFile });

function issuesOf(fn: () => unknown): { path: string; message: string }[] {
  try {
    fn();
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigInvalidError);
    return [...(error as ConfigInvalidError).issues];
  }
  throw new Error('expected the references to be refused');
}

function config(respond: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { listeners: [{ name: 'web', listen: '127.0.0.1:8080', routes: [{ path_prefix: '/', respond: { status: 200, ...respond } }] }], ...extra };
}

describe('config: secret references', () => {
  it('resolves ${env:NAME} and ${file:/path} whole values, trimming one trailing newline of a file, and lists where they were', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'token'), 'from-file\n');
    await writeFile(join(dir, 'crlf'), 'two-lines\n\r\n');
    await writeFile(join(dir, 'bare'), 'no-newline');
    const data = {
      a: envRef('HOTCONF_SPEC_A'),
      nested: { list: ['plain', fileRef(join(dir, 'token'))], crlf: fileRef(join(dir, 'crlf')) },
      bare: fileRef(join(dir, 'bare')),
      empty: envRef('EMPTY'),
      number: 7,
    };
    const { data: resolved, references } = resolveReferences(data, 'x.yaml', reader({ HOTCONF_SPEC_A: 'from-env', EMPTY: '' }));
    expect(resolved).to.deep.equal({ a: 'from-env', nested: { list: ['plain', 'from-file'], crlf: 'two-lines\n' }, bare: 'no-newline', empty: '', number: 7 });
    expect(references).to.deep.equal([
      { path: 'a', keys: ['a'], kind: 'env', name: 'HOTCONF_SPEC_A' },
      { path: 'nested.list.1', keys: ['nested', 'list', '1'], kind: 'file', name: join(dir, 'token') },
      { path: 'nested.crlf', keys: ['nested', 'crlf'], kind: 'file', name: join(dir, 'crlf') },
      { path: 'bare', keys: ['bare'], kind: 'file', name: join(dir, 'bare') },
      { path: 'empty', keys: ['empty'], kind: 'env', name: 'EMPTY' },
    ]);
    // The input is left as it was.
    expect(data.a).to.equal(envRef('HOTCONF_SPEC_A'));
  });

  it('reads $${ as a literal ${ and refuses a reference that is not the whole value', () => {
    const { data, references } = resolveReferences({ a: '$${env:X}', b: 'cost: $5 {x} $$${y}', c: 'a $${b} and $${c}' }, undefined, reader({ X: 'no' }));
    expect(data).to.deep.equal({ a: envRef('X'), b: 'cost: $5 {x} $${y}', c: 'a ${b} and ${c}' });
    expect(references).to.deep.equal([]);
    const issues = issuesOf(() => resolveReferences({ a: 'Bearer ${env:X}', b: '${vault:x}', c: { d: '${env:X' } }, undefined, reader({ X: 'no' })));
    expect(issues.map((i) => i.path)).to.deep.equal(['a', 'b', 'c.d']);
    for (const issue of issues) expect(issue.message).to.contain('must be the whole value').and.contain('$${');
  });

  it('refuses an unset variable and an unusable file, naming the config path and the reference, never a value', async () => {
    const dir = await tempDir();
    const unreadable = join(dir, 'unreadable');
    await writeFile(unreadable, 'S3cr3t-unreadable');
    await chmod(unreadable, 0o000);
    await mkdir(join(dir, 'dir'));
    await writeFile(join(dir, 'big'), Buffer.alloc(MAX_REFERENCED_FILE_BYTES + 1, 'x'));
    await writeFile(join(dir, 'binary'), Buffer.from([0xff, 0xfe, 0x00]));
    const data = {
      tracing: { headers: { authorization: envRef('HOTCONF_SPEC_UNSET'), 'x-key': envRef('1BAD') } },
      files: [fileRef(join(dir, 'missing')), fileRef(join(dir, 'dir')), '${file:relative/path}', fileRef(join(dir, 'big'))],
      binary: fileRef(join(dir, 'binary')),
      ...(process.getuid?.() === 0 ? {} : { unreadable: fileRef(unreadable) }),
    };
    const issues = issuesOf(() => resolveReferences(data, 'etcd:/hotconf/config', reader()));
    const byPath = Object.fromEntries(issues.map((i) => [i.path, i.message]));
    expect(byPath['tracing.headers.authorization']).to.equal('${env:HOTCONF_SPEC_UNSET}: environment variable HOTCONF_SPEC_UNSET is not set');
    expect(byPath['tracing.headers.x-key']).to.contain('${env:1BAD}: not a variable name');
    expect(byPath['files.0']).to.equal(`\${file:${join(dir, 'missing')}}: no such file or directory (ENOENT)`);
    expect(byPath['files.1']).to.contain('is a directory, not a regular file');
    expect(byPath['files.2']).to.contain('must be an absolute path');
    expect(byPath['files.3']).to.contain(`the limit is ${MAX_REFERENCED_FILE_BYTES} bytes`);
    expect(byPath.binary).to.contain('not UTF-8 text');
    if (process.getuid?.() !== 0) expect(byPath.unreadable).to.contain('permission denied (EACCES)');
    expect(JSON.stringify(issues)).to.not.contain('S3cr3t');
  });

  it('resolves before validation in loadConfig: the schema sees the values, and its messages never quote them', async () => {
    const dir = await tempDir();
    const file = join(dir, 'header');
    await writeFile(file, 'S3cr3t-value\r\nx: injected\n');
    const env = { HOTCONF_SPEC_LISTEN: 'S3cr3t-not-an-address', HOTCONF_SPEC_BODY: 'S3cr3t-body' };
    const loaded = loadConfig(stringify(config({ body: envRef('HOTCONF_SPEC_BODY') })), { references: reader(env) });
    expect(loaded.config.listeners[0]!.routes[0]!.respond!.body).to.equal('S3cr3t-body');
    expect(loaded.references).to.have.length(1);
    // A changed value is a changed config.
    const changed = loadConfig(stringify(config({ body: envRef('HOTCONF_SPEC_BODY') })), { references: reader({ HOTCONF_SPEC_BODY: 'other' }) });
    expect(changed.hash).to.not.equal(loaded.hash);

    const bad = { ...config({ headers: { 'x-token': `\${file:${file}}` } }) };
    (bad.listeners as Record<string, unknown>[])[0]!.listen = envRef('HOTCONF_SPEC_LISTEN');
    // The endpoint's message quotes what it was given (`http://VALUE, not VALUE`): scrubbed.
    bad.tracing = { exporter: 'none', endpoint: envRef('HOTCONF_SPEC_ENDPOINT') };
    const issues = issuesOf(() => loadConfig(stringify(bad), { references: reader({ ...env, HOTCONF_SPEC_ENDPOINT: 'S3cr3t-collector:4318' }) }));
    expect(issues.map((i) => i.path).sort()).to.deep.equal(['listeners.0.listen', 'listeners.0.routes.0.respond.headers.x-token', 'tracing.endpoint']);
    expect(issues.find((i) => i.path === 'tracing.endpoint')!.message).to.equal(
      `must be an http:// or https:// URL, scheme included (http://${REDACTED}, not ${REDACTED})`,
    );
    expect(JSON.stringify(issues)).to.not.contain('S3cr3t');
  });

  it('makes resolved values secrets: redacted by reference path, listed for scrubbing, beside SECRET_PATHS', () => {
    const env = { T: 'S3cr3t-body', H: 'S3cr3t-header' };
    const text = stringify(config({ body: envRef('T') }, { tracing: { exporter: 'none', headers: { 'x.dotted': envRef('H'), plain: 'S3cr3t-plain' } } }));
    const { config: loaded, references } = loadConfig(text, { references: reader(env) });
    const redacted = redactConfig(loaded, SECRET_PATHS, references);
    expect(redacted.listeners[0]!.routes[0]!.respond!.body).to.equal(REDACTED);
    expect(redacted.tracing!.headers).to.deep.equal({ 'x.dotted': REDACTED, plain: REDACTED });
    expect(loaded.listeners[0]!.routes[0]!.respond!.body).to.equal('S3cr3t-body');
    expect(secretValues(loaded, SECRET_PATHS, references).sort()).to.deep.equal(['S3cr3t-body', 'S3cr3t-header', 'S3cr3t-plain']);
  });
});
