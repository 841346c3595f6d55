import { z } from 'zod';
import { ConfigReferenceSchema } from '../config/references.js';

/**
 * The messages between `ConfigParser` (the serving thread) and its worker thread: one request
 * per document, one reply per request, matched by `id`. Both sides parse what they receive
 * with these schemas. The config in a `loaded` reply was built by `ConfigSchema` in the worker;
 * it is checked here for its shape only (validating it again would redo the worker's work on
 * the serving thread).
 */
export const ParseRequestSchema = z.strictObject({
  id: z.int().positive(),
  /** The document (YAML or JSON). */
  text: z.string(),
  /** Where it came from (file path, etcd key), named in errors. */
  origin: z.string().optional(),
  /** Size limit in bytes (default `DEFAULT_MAX_DOCUMENT_BYTES`). */
  maxDocumentBytes: z.int().positive().optional(),
});
export type ParseRequest = z.infer<typeof ParseRequestSchema>;

const IssueSchema = z.strictObject({ path: z.string(), message: z.string() });

export const ParseReplySchema = z.discriminatedUnion('kind', [
  /** Valid: the defaults-filled config (references resolved), its canonical hash and the references it held. */
  z.strictObject({
    id: z.int().positive(),
    kind: z.literal('loaded'),
    config: z.record(z.string(), z.unknown()),
    hash: z.string().regex(/^[0-9a-f]{64}$/),
    references: z.array(ConfigReferenceSchema).optional(),
  }),
  /** Refused: a `ConfigInvalidError`'s issues and origin. */
  z.strictObject({ id: z.int().positive(), kind: z.literal('invalid'), issues: z.array(IssueSchema), origin: z.string().optional() }),
  /** Anything else the parse threw (a bug): its message. */
  z.strictObject({ id: z.int().positive(), kind: z.literal('crashed'), message: z.string() }),
]);
export type ParseReply = z.infer<typeof ParseReplySchema>;
