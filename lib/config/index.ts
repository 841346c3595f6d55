export * from './schema.js';
export * from './parse.js';
export * from './redact.js';
export * from './hash.js';
export * from './address.js';
