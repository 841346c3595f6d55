import type { Attributes } from '@opentelemetry/api';
import { ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_REQUEST_METHOD_ORIGINAL } from '@opentelemetry/semantic-conventions';
import { HTTP_METHODS } from '../config/schema.js';

// What the OpenTelemetry HTTP semantic conventions say for both span kinds hotconf starts: the
// server span of a request (handler.ts) and the client span of each upstream attempt (proxy.ts).

/** The methods the conventions know (RFC 9110's and PATCH); any other is reported as `_OTHER`. */
const KNOWN_METHODS: ReadonlySet<string> = new Set(HTTP_METHODS);

/**
 * Set `http.request.method` on `attributes`: the method when the conventions know it, else
 * `_OTHER` with the method in `http.request.method_original`. Returns the method part of the
 * span name, `HTTP` for an unknown method.
 */
export function setRequestMethod(attributes: Attributes, method: string): string {
  if (KNOWN_METHODS.has(method)) {
    attributes[ATTR_HTTP_REQUEST_METHOD] = method;
    return method;
  }
  attributes[ATTR_HTTP_REQUEST_METHOD] = '_OTHER';
  attributes[ATTR_HTTP_REQUEST_METHOD_ORIGINAL] = method;
  return 'HTTP';
}
