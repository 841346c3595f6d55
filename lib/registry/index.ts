export { ResourceRegistry } from './registry.js';
export type { ResourceFactory, KindStats, EntrySnapshot, CloseReport, RegistryEvent, ResourceRegistryOptions } from './registry.js';
export { Lease } from './lease.js';
export { sectionKey } from './key.js';
