import { z } from 'zod';
import { ConfigReferenceSchema } from '../config/references.js';

/**
 * The messages between a cluster's primary and its workers (node:cluster IPC), each a zod
 * schema: every message is validated where it is received, and anything else on the channel
 * (prom-client's own metrics requests) is ignored. Types end in `hotconf:` so the two never mix.
 *
 * A reload is two-phase: the primary sends `prepare` (the document and the config it validated,
 * with a monotonic `revision`) to every worker; each provisions the new generation and answers
 * `prepared` (ok or why not); only when all are ok does the primary send `commit`, and each
 * worker swaps and answers `committed`; otherwise it sends `abort` and every worker releases
 * what it provisioned, so no two workers serve different configs for longer than the swap.
 */

const Revision = z.number().int().positive();

const Document = z.object({
  text: z.string(),
  version: z.string(),
  source: z.looseObject({ kind: z.string() }),
});

const Issue = z.object({ path: z.string(), message: z.string() });

export const PrimaryMessageSchema = z.discriminatedUnion('type', [
  /**
   * Provision this config (validated by the primary: `config` is its defaults-filled JSON with
   * secret references resolved, `hash` its canonical hash, `references` where the resolved values are, for redaction).
   */
  z.object({
    type: z.literal('hotconf:prepare'),
    revision: Revision,
    doc: Document,
    config: z.unknown(),
    hash: z.string(),
    references: z.array(ConfigReferenceSchema).optional(),
  }),
  z.object({ type: z.literal('hotconf:commit'), revision: Revision }),
  z.object({ type: z.literal('hotconf:abort'), revision: Revision }),
  /** Answer with `leaks` (the worker's leak report), tagged with `request`. */
  z.object({ type: z.literal('hotconf:leaks'), request: z.number().int() }),
  /** Answer with `metrics` (the worker's prom-client registry as JSON, for `AggregatorRegistry.aggregate`). */
  z.object({ type: z.literal('hotconf:metrics'), request: z.number().int() }),
  /** A target's health as the primary's checker sees it (a transition, or an entry of the snapshot a new worker gets). */
  z.object({ type: z.literal('hotconf:health'), upstream: z.string(), target: z.string(), healthy: z.boolean() }),
  /** Stop gracefully (drain, release, close), answer `stopped` with the final leak report, exit 0. */
  z.object({ type: z.literal('hotconf:stop') }),
]);
export type PrimaryMessage = z.infer<typeof PrimaryMessageSchema>;

export const WorkerMessageSchema = z.discriminatedUnion('type', [
  /** The worker is up and waits for its first `prepare`. */
  z.object({ type: z.literal('hotconf:ready') }),
  z.object({
    type: z.literal('hotconf:prepared'),
    revision: Revision,
    ok: z.boolean(),
    /** Why not, for a failed provision (`path`: the config path that failed) or an invalid config. */
    error: z.string().optional(),
    path: z.string().optional(),
    errors: z.array(Issue).optional(),
  }),
  /** Swapped: `generation` is the worker's own generation id now serving `revision`. */
  z.object({ type: z.literal('hotconf:committed'), revision: Revision, generation: z.number().int().nonnegative() }),
  z.object({ type: z.literal('hotconf:leaks'), request: z.number().int(), report: z.unknown() }),
  z.object({ type: z.literal('hotconf:metrics'), request: z.number().int(), metrics: z.array(z.unknown()) }),
  z.object({ type: z.literal('hotconf:stopped'), report: z.unknown() }),
]);
export type WorkerMessage = z.infer<typeof WorkerMessageSchema>;

/** `message` as a primary message, or undefined when it is not one (another protocol's, or malformed). */
export function primaryMessage(message: unknown): PrimaryMessage | undefined {
  const parsed = PrimaryMessageSchema.safeParse(message);
  return parsed.success ? parsed.data : undefined;
}

/** `message` as a worker message, or undefined when it is not one. */
export function workerMessage(message: unknown): WorkerMessage | undefined {
  const parsed = WorkerMessageSchema.safeParse(message);
  return parsed.success ? parsed.data : undefined;
}
