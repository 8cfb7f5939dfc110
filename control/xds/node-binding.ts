// A node credential (the node token on 15012) speaks for one node: a stream authenticated as node
// N may not present itself as another node. The node proxy's id is `node-proxy~<node>` and it
// sends NODE_NAME in its metadata; both must name N. Other ids (a waypoint's
// `waypoint~<ip>~<name>.<ns>~…`, a proxyless client's) claim no node and are accepted: the views
// they select carry no per-node secret (every node already receives the whole workload API), and
// a waypoint's certificate is bound to its node by the CA's placement check, not by this id.
import { status } from '@grpc/grpc-js';
import { XdsRequestError } from './request-error';

export const NODE_PROXY_ID_PREFIX = 'node-proxy~';

/** Throws PERMISSION_DENIED when `node` claims a node other than `authenticatedNode`. */
export function assertNodeBinding(
  node: { readonly id: string; readonly metadata?: Readonly<Record<string, unknown>> } | undefined,
  authenticatedNode: string,
): void {
  const id = node?.id ?? '';
  const claimed: string[] = [];
  if (id.startsWith(NODE_PROXY_ID_PREFIX)) claimed.push(id.slice(NODE_PROXY_ID_PREFIX.length));
  const meta = node?.metadata?.NODE_NAME;
  if (meta !== undefined) claimed.push(typeof meta === 'string' ? meta : JSON.stringify(meta));
  const other = claimed.find((n) => n !== authenticatedNode);
  if (other !== undefined) {
    throw new XdsRequestError(
      `the node credential belongs to node "${authenticatedNode}", but the request's node (id "${id}") claims node "${other}"; each node proxy must use its own node's token`,
      status.PERMISSION_DENIED,
    );
  }
}
