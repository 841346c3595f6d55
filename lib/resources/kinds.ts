import { accessLogFileKind } from './access-log.js';
import { fileWatchKind } from './file-watch.js';
import { healthCheckerKind, targetHealthKind } from './health.js';
import { httpStackKind } from './http-stack.js';
import type { ResourceKind, ResourceKinds } from './kind.js';
import { listenerKind } from './listener.js';
import { tlsCertificateKind } from './tls-certificate.js';
import { tracerProviderKind } from './tracing.js';
import { upstreamPoolKind } from './upstream.js';

/**
 * Every resource kind hotconf provisions: the one list to add a kind to (besides using it in a
 * provision step). Leak reports, metrics and fault injection walk it.
 */
export const RESOURCE_KINDS: readonly ResourceKind<never, unknown>[] = [
  tracerProviderKind,
  targetHealthKind,
  healthCheckerKind,
  upstreamPoolKind,
  listenerKind,
  tlsCertificateKind,
  httpStackKind,
  fileWatchKind,
  accessLogFileKind,
] as ResourceKind<never, unknown>[];

/** `RESOURCE_KINDS` as a table by kind name, with `overrides` (by kind name) replacing entries. */
export function defaultResourceKinds(overrides: ResourceKinds = {}): ResourceKinds {
  return { ...Object.fromEntries(RESOURCE_KINDS.map((kind) => [kind.kind, kind])), ...overrides };
}
