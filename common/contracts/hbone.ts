// The request headers an HBONE CONNECT carries besides the bytes, named as ztunnel sends them.
// Their values are read and written by common/hbone/headers.ts.

/** RFC 7239 `forwarded: for="<client ip>:<client port>"`: the app's own address, since one tunnel carries many apps' streams. */
export const HEADER_FORWARDED = 'forwarded';
/** W3C trace context, so traces continue across the tunnel. */
export const HEADER_TRACEPARENT = 'traceparent';
/** W3C baggage: the source workload as its node proxy describes it (k8s.*.name, service.name, …). */
export const HEADER_BAGGAGE = 'baggage';
