export { sectionKey } from './key.js';
export { LEASE_KEPT, Lease, releaseCounted, releaseNewestFirst } from './lease.js';
export type { CloseReport, EntrySnapshot, KindStats, RegistryEvent, ResourceFactory, ResourceRegistryOptions } from './registry.js';
export { ResourceRegistry } from './registry.js';
