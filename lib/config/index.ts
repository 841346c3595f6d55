export * from './address.js';
export * from './decode.js';
export * from './fragment-merge.js';
export * from './fragments.js';
export * from './hash.js';
export * from './parse.js';
export * from './redact.js';
export * from './schema.js';
