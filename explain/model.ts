// What `nodemesh explain` answers, as JSON (GET /v1/explain, `nodemesh explain -o json`) and as the
// input of the text output (text.ts). docs/explain.md documents this shape field by field; change
// both together.

/** The question: a connection FROM -> TO[:PORT], and for HTTP the request's method and path. */
export interface ExplainQuery {
  /** `ns/name` workload, pod name, or an IP address. */
  readonly from: string;
  /** `ns/name` workload, pod name, Service `name.ns[.svc.<suffix>]`, or an IP address; `:PORT` optional. */
  readonly to: string;
  /** The destination port when `to` carries none. */
  readonly port?: number;
  /** HTTP method the waypoint sees (default GET). */
  readonly method?: string;
  /** HTTP path the waypoint sees (default /). */
  readonly path?: string;
}

/** One end of the connection as the control plane's state names it. */
export interface Party {
  /** workload: a Workload; service: a Service VIP; address: an IP no Workload or Service has (outside the mesh). */
  readonly kind: 'workload' | 'service' | 'address';
  /** `ns/name` (workload), `ns/hostname` (service), or the address. */
  readonly name: string;
  /** The IP the connection uses (the workload's first address, the VIP, or the address). */
  readonly address: string;
  readonly namespace?: string;
  /** Workload: its node. */
  readonly node?: string;
  /** Workload: its SPIFFE ID. */
  readonly identity?: string;
  /** Workload: enrolled in the mesh (HBONE), i.e. captured by its node's proxy. */
  readonly enrolled?: boolean;
  /** Workload or Service: the waypoint Gateway it uses (`ns/name`), if any. */
  readonly waypoint?: string;
}

export interface Source extends Party {
  /** The source's node proxy captures its outbound connections. */
  readonly captured: boolean;
  /** Why (or why not), in words. */
  readonly capture: string;
}

export interface Destination extends Party {
  readonly port: number;
}

/** How the connection travels: the first hop decides it. */
export type PathKind =
  /** Both ends on one node: the node proxy hands it over without TLS, with the source's identity. */
  | 'same-node'
  /** An HBONE (mTLS) tunnel to the destination's node proxy. */
  | 'hbone'
  /** An HBONE tunnel to a waypoint, which sends it on. */
  | 'waypoint'
  /** Captured, but the destination is outside the mesh: plain TCP to where the app meant to go. */
  | 'passthrough'
  /** Not captured (or to a workload that is not enrolled): plain TCP as sent. */
  | 'plaintext'
  /** The source's node proxy refuses it (resets the client). */
  | 'refused';

/** One leg of the path. */
export interface Hop {
  /** `ns/name` of a workload, `waypoint ns/name`, or an address. */
  readonly from: string;
  readonly fromIdentity?: string;
  readonly to: string;
  readonly toIdentity?: string;
  /** ip:port dialled (the HBONE endpoint for a tunnel). */
  readonly toAddress: string;
  /** The CONNECT authority inside the tunnel (hbone). */
  readonly authority?: string;
  readonly transport: 'hbone' | 'same-node' | 'tcp';
  /** The node whose proxy sends this hop (absent when nobody captures it). */
  readonly node?: string;
}

/** A decision one policy point took about this connection. */
export interface PolicyDecision {
  /** Who enforces it: `node proxy <node>` or `waypoint <ns/name>`. */
  readonly enforcer: string;
  /** What it protects: the destination workload (`ns/name`) or the Service port at the waypoint. */
  readonly target: string;
  /**
   * PeerAuthentication: the mTLS mode; waypoint-binding: only the waypoint may connect;
   * AuthorizationPolicy: ALLOW/DENY (node proxy: L4; waypoint: RBAC); route: the waypoint has
   * no route/listener for it.
   */
  readonly kind: 'PeerAuthentication' | 'waypoint-binding' | 'AuthorizationPolicy' | 'route';
  /** `ns/name` of the deciding resource, absent when none decided (default allow / nothing matched). */
  readonly policy?: string;
  /** 1-based rule of `policy` that matched. */
  readonly rule?: number;
  /** ALLOW, DENY (AuthorizationPolicy), STRICT, PERMISSIVE (PeerAuthentication). */
  readonly action?: string;
  readonly allowed: boolean;
  readonly reason: string;
}

/** A backend a waypoint route sends to, with its weight and endpoints. */
export interface Backend {
  /** The Envoy cluster (`outbound|port||host`). */
  readonly cluster: string;
  /** The Service host and port behind the cluster, when it is one. */
  readonly service?: string;
  readonly port?: number;
  /** Relative weight, and the percentage of requests it gets. */
  readonly weight: number;
  readonly percent: number;
  /** ip:port of each endpoint the waypoint would pick from. */
  readonly endpoints: readonly string[];
}

/** What the waypoint does with the connection or request. */
export interface WaypointStep {
  /** The Gateway (`ns/name`). */
  readonly gateway: string;
  /** The waypoint instance the source's node proxy tunnels to (`ns/name` workload), if known. */
  readonly instance?: string;
  readonly address: string;
  readonly identity: string;
  /** The listener the CONNECT authority leads to. */
  readonly listener?: string;
  readonly protocol?: 'http' | 'tcp';
  /** HTTP: the request evaluated. */
  readonly request?: { readonly method: string; readonly path: string; readonly authority: string };
  /** HTTP: the route that matched: the Envoy route config, virtual host and route name, and the HTTPRoute rule it came from. */
  readonly route?: {
    readonly routeConfig: string;
    readonly virtualHost: string;
    readonly name: string;
    /** `ns/name` of the HTTPRoute, absent for the Service's default route. */
    readonly httpRoute?: string;
    /** 1-based rule and match of the HTTPRoute. */
    readonly rule?: number;
    readonly match?: number;
  };
  /** forward (to backends), redirect or direct (a fixed response). */
  readonly action?: 'forward' | 'redirect' | 'direct';
  readonly backends: readonly Backend[];
  /** The status the waypoint answers with itself (403 denied, 404 no route, a direct response or a redirect). */
  readonly status?: number;
}

/** The destination's own node proxy admitting one endpoint (the waypoint's upstream, or a direct tunnel). */
export interface EndpointOutcome {
  /** `ns/name` of the endpoint workload. */
  readonly workload: string;
  readonly node?: string;
  readonly address: string;
  readonly allowed: boolean;
  readonly reason: string;
}

export type VerdictKind =
  /** Reaches the destination. */
  | 'allowed'
  /** Refused by policy (node proxy or waypoint). */
  | 'denied'
  /** Allowed for some endpoints and denied for others. */
  | 'partial'
  /** The mesh cannot deliver it (no endpoint, no such port, unusable waypoint, no route). */
  | 'unreachable'
  /** Leaves the mesh: nothing enforces anything. */
  | 'passthrough';

export interface Verdict {
  readonly allowed: boolean;
  readonly kind: VerdictKind;
  /** The enforcer and resource that decided, e.g. `node proxy node2: demo/tcp-echo-deny-outside`. */
  readonly by?: string;
  /** One line: `ALLOWED: …` / `DENIED: …` / `UNREACHABLE: …` / `PASSTHROUGH: …` / `PARTIAL: …`. */
  readonly line: string;
}

/** What the proxies recorded for this pair recently (`--observed`, added by the CLI). */
export interface Observed {
  /** Records found, newest first, as the control plane gathered them (common/recent-records.ts plus the proxy's fields). */
  readonly records: readonly unknown[];
  /** Summary, e.g. `3 ok, 2 denied in the last 5 min (reported by source, destination)`. */
  readonly summary: string;
}

export interface Explanation {
  readonly kind: 'Explanation';
  /** The store revision the answer was computed from. */
  readonly revision: number;
  readonly query: Required<Pick<ExplainQuery, 'from' | 'to'>> & { readonly port: number; readonly method: string; readonly path: string };
  readonly source: Source;
  readonly destination: Destination;
  readonly path: PathKind;
  readonly hops: readonly Hop[];
  readonly waypoint?: WaypointStep;
  /** Every policy point on the way, in the order they decide. */
  readonly policies: readonly PolicyDecision[];
  /** Per endpoint, when more than one could serve it (a Service). */
  readonly endpoints?: readonly EndpointOutcome[];
  /** Things explain could not evaluate or that need attention (waypoint config that would be refused, …). */
  readonly notes: readonly string[];
  readonly verdict: Verdict;
  readonly observed?: Observed;
}
