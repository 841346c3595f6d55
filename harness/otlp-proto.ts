import protobuf from 'protobufjs';

/**
 * The part of OTLP's trace protocol the spec receiver reads (opentelemetry-proto
 * `collector/trace/v1/trace_service.proto` and `trace/v1/trace.proto`, same field numbers),
 * parsed with protobufjs: enough to decode what `@opentelemetry/exporter-trace-otlp-proto` and
 * `-grpc` send into the shape the OTLP/JSON encoding has (hex ids, camelCase keys, 64-bit ints as
 * strings), so one recorder serves every protocol.
 */
const OTLP_TRACE_PROTO = `
syntax = "proto3";
package otlp;
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeSpans { repeated Span spans = 2; }
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  bytes parent_span_id = 4;
  string name = 5;
  int32 kind = 6;
  repeated KeyValue attributes = 9;
}
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
`;

const REQUEST = protobuf.parse(OTLP_TRACE_PROTO).root.lookupType('otlp.ExportTraceServiceRequest');

/** The gRPC method `@opentelemetry/exporter-trace-otlp-grpc` calls. */
export const OTLP_TRACE_GRPC_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

/**
 * Decode a protobuf `ExportTraceServiceRequest` into its OTLP/JSON shape.
 * @throws protobufjs' decode error for bytes that are not one
 */
export function decodeTraceRequest(bytes: Uint8Array): { resourceSpans?: unknown[] } {
  const object = REQUEST.toObject(REQUEST.decode(bytes), { longs: String });
  return hexIds(object) as { resourceSpans?: unknown[] };
}

const ID_FIELDS = new Set(['traceId', 'spanId', 'parentSpanId']);

/** `value` with every `traceId`/`spanId`/`parentSpanId` byte field as lower-case hex, as OTLP/JSON has them. */
function hexIds(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(hexIds);
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value;
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    out[key] = ID_FIELDS.has(key) && field instanceof Uint8Array ? Buffer.from(field).toString('hex') : hexIds(field);
  }
  return out;
}
