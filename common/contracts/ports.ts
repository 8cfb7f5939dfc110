// The mesh's well-known ports, Istio's numbers so ambient tooling and habits carry over. The one
// place they are written in TypeScript; bpf/include/common.h repeats the data-path ones for the
// BPF programs and common/contracts/contracts.unit.test.ts checks that copy against this file.

/** Node proxy and waypoint admin (config and state dumps), loopback only. */
export const ADMIN_PORT = 15000;
/** The node proxy's outbound capture listener in each workload's netns (connect() is redirected to 127.0.0.1:15001). */
export const OUTBOUND_CAPTURE_PORT = 15001;
/** The node proxy's inbound capture listener in each workload's netns (sk_lookup assigns inbound connections to it). */
export const INBOUND_CAPTURE_PORT = 15006;
/** HBONE: mTLS HTTP/2 CONNECT, served by node proxies (in each workload's netns) and waypoints. */
export const HBONE_PORT = 15008;
/** The control plane's plaintext xDS, loopback only (tests, `nodemesh xds`). */
export const XDS_PLAINTEXT_PORT = 15010;
/** The control plane's TLS gRPC port: xDS and the certificate service, with node tokens. */
export const XDS_TLS_PORT = 15012;
/** The control plane's config API (HTTP, bearer token). */
export const CONFIG_API_PORT = 15014;
/** Prometheus /metrics of the node proxy and the waypoint. */
export const METRICS_PORT = 15020;
/** Readiness, /healthz/ready, of the node proxy and the waypoint. */
export const READY_PORT = 15021;
/**
 * An Envoy waypoint's Prometheus stats, /stats/prometheus: a bootstrap listener forwarding to
 * Envoy's loopback admin (Istio's Envoy proxies use the same port and path).
 */
export const ENVOY_STATS_PORT = 15090;
/** The path Envoy's admin serves its stats in Prometheus' text format on. */
export const ENVOY_STATS_PATH = '/stats/prometheus';

/**
 * The ports a node proxy listens on itself. A captured connection addressed to one of them is
 * refused rather than forwarded: forwarding it would send it back into the proxy.
 */
export const NODE_PROXY_PORTS: ReadonlySet<number> = new Set([ADMIN_PORT, OUTBOUND_CAPTURE_PORT, INBOUND_CAPTURE_PORT, HBONE_PORT, METRICS_PORT, READY_PORT]);
