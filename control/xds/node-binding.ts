// What a credential on 15012 may claim in an ADS stream's `node` (checked on the first request of
// every stream, delta and state of the world alike):
// - A node proxy (`node-proxy~<node>` id, or NODE_NAME in its metadata) must name the credential's
//   node; a credential that is not a node's (a waypoint's ServiceAccount token on Kubernetes) may
//   not claim to be a node proxy at all.
// - A waypoint (NODEMESH_WAYPOINT `<ns>/<name>` metadata, else a `waypoint~<ip>~<name>.<ns>~…` id —
//   exactly what selects its Envoy view) must be one of the credential's: a Workload labelled
//   gateway.networking.k8s.io/gateway-name=<name> in <ns> is scheduled on the credential's node
//   (in the lab the credential is that node's token), and, for a credential bound to one service
//   account (Kubernetes), runs as that service account. This is the rule the CA applies before
//   signing a waypoint's certificate.
// - A mesh client certificate (certificate-caller.ts) speaks for its one service account on any
//   node: a waypoint running as it, never a node proxy.
// - Other ids (a proxyless gRPC client's) claim nothing: their view carries no per-node or
//   per-waypoint configuration and is served to any authenticated caller.
// Violations end the stream with PERMISSION_DENIED.
import { status } from '@grpc/grpc-js';
import { GATEWAY_NAME_LABEL } from '../../common/contracts/labels';
import { XdsRequestError } from './request-error';

export const NODE_PROXY_ID_PREFIX = 'node-proxy~';

/** The `node` of a request, as much of it as the binding reads. */
export interface RequestNode {
  readonly id: string;
  readonly metadata?: Readonly<Record<string, unknown>>;
}

/** Who a stream's credential belongs to (control/ca/tokens.ts Caller, without the wording). */
export interface StreamCaller {
  /** The node the credential's holder runs on. */
  readonly node: string;
  /** A mesh certificate's holder (certificate-caller.ts): its node is not known; it may be a waypoint on any node. */
  readonly anyNode?: boolean;
  /** When set, the holder is not a node proxy and may only be this service account. */
  readonly only?: { readonly namespace: string; readonly serviceAccount: string };
  /** For messages, e.g. "node 'node1'". */
  readonly who: string;
}

/** True when a Workload of waypoint `namespace/name` runs on `caller.node` (as `caller.only`, if set). */
export type WaypointPlacement = (waypoint: { readonly namespace: string; readonly name: string }, caller: StreamCaller) => boolean;

/** An authenticated stream: who it is, and how waypoint claims are checked. */
export interface NodeBinding {
  readonly caller: StreamCaller;
  readonly waypointPlacement?: WaypointPlacement;
}

/** The waypoint a request's node claims to be (the same reading that picks its Envoy view). */
export function claimedWaypoint(node: RequestNode | undefined): { namespace: string; name: string } | undefined {
  const meta = node?.metadata?.NODEMESH_WAYPOINT;
  if (typeof meta === 'string' && meta.includes('/')) {
    const [namespace, name] = meta.split('/');
    return { namespace: namespace!, name: name! };
  }
  const parts = (node?.id ?? '').split('~');
  if (parts[0] === 'waypoint' && parts.length >= 3) {
    const dot = parts[2]!.lastIndexOf('.');
    if (dot > 0) return { namespace: parts[2]!.slice(dot + 1), name: parts[2]!.slice(0, dot) };
  }
  return undefined;
}

/** Throws PERMISSION_DENIED when `node` claims something `caller`'s credential does not speak for. */
export function assertNodeBinding(node: RequestNode | undefined, caller: StreamCaller, waypointPlacement?: WaypointPlacement): void {
  const id = node?.id ?? '';
  const claimed: string[] = [];
  if (id.startsWith(NODE_PROXY_ID_PREFIX)) claimed.push(id.slice(NODE_PROXY_ID_PREFIX.length));
  const meta = node?.metadata?.NODE_NAME;
  if (meta !== undefined) claimed.push(typeof meta === 'string' ? meta : JSON.stringify(meta));
  if (claimed.length > 0 && caller.only) {
    throw new XdsRequestError(
      `${caller.who} is not a node proxy, but the request's node (id "${id}") claims node "${claimed[0]}"; only a node proxy's credential may`,
      status.PERMISSION_DENIED,
    );
  }
  const other = claimed.find((n) => caller.anyNode || n !== caller.node);
  if (other !== undefined) {
    throw new XdsRequestError(
      `the node credential belongs to node "${caller.node}", but the request's node (id "${id}") claims node "${other}"; each node proxy must use its own node's token`,
      status.PERMISSION_DENIED,
    );
  }
  const waypoint = claimedWaypoint(node);
  if (waypoint && waypointPlacement && !waypointPlacement(waypoint, caller)) {
    const as = caller.only ? ` running as service account ${caller.only.namespace}/${caller.only.serviceAccount}` : '';
    const where = caller.anyNode ? '' : ` is scheduled on node '${caller.node}'`;
    throw new XdsRequestError(
      `${caller.who} may not act as waypoint ${waypoint.namespace}/${waypoint.name} (node id "${id}"): no Workload labelled ${GATEWAY_NAME_LABEL}=${waypoint.name} in namespace ${waypoint.namespace}${as}${where}`,
      status.PERMISSION_DENIED,
    );
  }
}
