import { z } from 'zod';
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

/** `hotconf schema`: print `configJsonSchema()` for editors (`# yaml-language-server: $schema=...`). */
export function schemaCommand(io: Io): number {
  io.out(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
  return 0;
}
