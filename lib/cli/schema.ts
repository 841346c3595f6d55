import { z } from 'zod';
import { FragmentDocumentSchema } from '../config/fragments.js';
import { ConfigSchema } from '../config/schema.js';
import type { Io } from './io.js';

/**
 * The JSON Schema (draft 2020-12) of a config document, generated from the zod schema (zod 4's
 * `z.toJSONSchema`) so it can never disagree with it on shape: the input side, where fields with
 * a default are optional. Checks zod runs in code (`superRefine`: listen addresses, duplicate
 * names, unknown upstreams) have no JSON Schema form and are left to `hotconf validate`.
 */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}

/**
 * The JSON Schema of one fragment (a file of `--config-dir`, a key under an etcd `--prefix`):
 * every section optional, each `listeners` entry either a listener definition (`name`, `listen`,
 * ...) or routes added to a listener by name (`name`, `routes`), as `FragmentDocumentSchema`.
 * Checks across fragments (a name defined twice, an upstream no fragment defines) are left to
 * `hotconf validate DIR`.
 */
export function fragmentJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(FragmentDocumentSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}

/** `hotconf schema [--fragment]`: print `configJsonSchema()` (or `fragmentJsonSchema()`) for editors (`# yaml-language-server: $schema=...`). */
export function schemaCommand(io: Io, options: { fragment?: boolean } = {}): number {
  const schema = options.fragment ? fragmentJsonSchema() : configJsonSchema();
  io.out(`${JSON.stringify(schema, null, 2)}\n`);
  return 0;
}
