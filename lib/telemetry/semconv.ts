import { type Attributes, type Span, SpanStatusCode } from '@opentelemetry/api';
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
} from '@opentelemetry/semantic-conventions';
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
/** The method part of an HTTP span's name: the method when it is a known one, else `HTTP` (as `setRequestMethod` returns). */
export function spanMethodName(method: string): string {
  return KNOWN_METHODS.has(method) ? method : 'HTTP';
}

export function setRequestMethod(attributes: Attributes, method: string): string {
  if (KNOWN_METHODS.has(method)) {
    attributes[ATTR_HTTP_REQUEST_METHOD] = method;
    return method;
  }
  attributes[ATTR_HTTP_REQUEST_METHOD] = '_OTHER';
  attributes[ATTR_HTTP_REQUEST_METHOD_ORIGINAL] = method;
  return 'HTTP';
}

/**
 * End the span of an HTTP exchange. `status`: the response status, undefined when none was sent
 * or received (then no `http.response.status_code`). `error`: why the exchange failed, if it did
 * (`type` becomes `error.type`, `message` the span status message). Without an error, a status of
 * `errorFromStatus` or more is one, with the status code as `error.type`: 500 for server spans,
 * 400 for client spans.
 */
export function endHttpSpan(span: Span, status: number | undefined, error: { type: string; message: string } | undefined, errorFromStatus: 400 | 500): void {
  if (status !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
  if (error) {
    span.setAttribute(ATTR_ERROR_TYPE, error.type);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  } else if (status !== undefined && status >= errorFromStatus) {
    span.setAttribute(ATTR_ERROR_TYPE, String(status));
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}
