import { readFileSync } from 'node:fs';

/**
 * The `version` of hotconf's package.json, which sits two levels above this module both in the
 * repository (`lib/cli/` via tsx, `dist/cli/` compiled) and in an installed package.
 */
export function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}
