export { freePort } from '../../spec/helpers/ports.js';
