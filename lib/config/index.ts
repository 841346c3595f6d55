export * from './address.js';
export * from './decode.js';
export * from './hash.js';
export * from './parse.js';
export * from './redact.js';
export * from './references.js';
export * from './schema.js';
