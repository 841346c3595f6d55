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

/**
 * Fragments of a multi-document config to parse, resolve and validate each on its own
 * (`loadFragment`), in one message; names unique. The worker keeps what it needs to load the next
 * version of a fragment it saw (by name) incrementally.
 */
export const FragmentsRequestSchema = z.strictObject({
  id: z.int().positive(),
  fragments: z.array(z.strictObject({ name: z.string(), text: z.string() })),
  /** Size limit of one fragment in bytes (default `DEFAULT_MAX_DOCUMENT_BYTES`). */
  maxDocumentBytes: z.int().positive().optional(),
  /** Fragments gone from the config (none of `fragments`): the worker forgets them, and their next version, if any, is sent whole. */
  removed: z.array(z.string()).optional(),
});
export type FragmentsRequest = z.infer<typeof FragmentsRequestSchema>;

const IssueSchema = z.strictObject({ path: z.string(), message: z.string() });

const IndexSchema = z.int().nonnegative();
const SectionSchema = z.record(z.string(), z.unknown());

/**
 * A config told as its differences from the config of an earlier reply (`base`, that reply's
 * id), which the serving thread kept: what is unchanged is named by where it is in the base
 * config, and is the base config's object again. See `configDelta`.
 */
export const ConfigDeltaSchema = z.strictObject({
  /** The id of the reply whose config this one is told against. */
  base: z.int().positive(),
  /** The config's keys, in order. */
  keys: z.array(z.string()),
  /** Top-level values (not `upstreams`, `listeners`) that are not the base config's. */
  changed: SectionSchema,
  /** `base`: the base config's upstreams, all of them; else each name's upstream: `changed`, else the base's of name `from[name]`, else of the same name. */
  upstreams: z.union([
    z.literal('base'),
    z.strictObject({ names: z.array(z.string()), from: z.record(z.string(), z.string()), changed: z.record(z.string(), SectionSchema) }),
  ]),
  /**
   * Each listener: the base config's listener at index `base`, or a new one, given with its
   * `routes` empty and its routes apart, each a new route or a run of the base config's routes
   * `[listener index, first route index, count]`.
   */
  listeners: z.array(
    z.union([
      z.strictObject({ base: IndexSchema }),
      z.strictObject({ listener: SectionSchema, routes: z.array(z.union([z.tuple([IndexSchema, IndexSchema, z.int().positive()]), SectionSchema])) }),
    ]),
  ),
});
export type ConfigDelta = z.infer<typeof ConfigDeltaSchema>;

export const ParseReplySchema = z.discriminatedUnion('kind', [
  /** Valid: the defaults-filled config (references resolved), its canonical hash and the references it held. */
  z.strictObject({
    id: z.int().positive(),
    kind: z.literal('loaded'),
    config: z.record(z.string(), z.unknown()),
    hash: z.string().regex(/^[0-9a-f]{64}$/),
    references: z.array(ConfigReferenceSchema).optional(),
  }),
  /** Valid, as `loaded`, the config told by its differences from an earlier reply's (the worker's last `loaded` or `changed` reply). */
  z.strictObject({
    id: z.int().positive(),
    kind: z.literal('changed'),
    delta: ConfigDeltaSchema,
    hash: z.string().regex(/^[0-9a-f]{64}$/),
    references: z.array(ConfigReferenceSchema).optional(),
  }),
  /** Refused: a `ConfigInvalidError`'s issues and origin. */
  z.strictObject({ id: z.int().positive(), kind: z.literal('invalid'), issues: z.array(IssueSchema), origin: z.string().optional() }),
  /**
   * The outcome of each fragment of a `FragmentsRequest`, in its order: the fragment (references
   * resolved), its hash and references, or its issues. A valid fragment is sent whole, or as its
   * differences (`delta`, as a `changed` reply's) from the fragment config of the last reply
   * that held a valid version of that name (`delta.base` is that reply's id): see `ConfigParser`.
   */
  z.strictObject({
    id: z.int().positive(),
    kind: z.literal('fragments'),
    results: z.array(
      z.union([
        z.strictObject({
          ok: z.literal(true),
          config: z.record(z.string(), z.unknown()),
          hash: z.string().regex(/^[0-9a-f]{64}$/),
          references: z.array(ConfigReferenceSchema).optional(),
        }),
        z.strictObject({
          ok: z.literal(true),
          delta: ConfigDeltaSchema,
          hash: z.string().regex(/^[0-9a-f]{64}$/),
          references: z.array(ConfigReferenceSchema).optional(),
        }),
        z.strictObject({ ok: z.literal(false), issues: z.array(IssueSchema) }),
      ]),
    ),
  }),
  /** Anything else the parse threw (a bug): its message. */
  z.strictObject({ id: z.int().positive(), kind: z.literal('crashed'), message: z.string() }),
]);
export type ParseReply = z.infer<typeof ParseReplySchema>;

/** The outcome of one fragment in a `fragments` reply. */
export type FragmentOutcome = Extract<ParseReply, { kind: 'fragments' }>['results'][number];
