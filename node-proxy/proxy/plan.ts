// The pure half of connection handling: where a connection goes and under which identity and
// policy, decided from the workload state alone (no sockets, no certificates, no clock). The
// executors (outbound.ts, inbound.ts) carry a plan out; this module is unit tested on its own.
//
//   planOutbound  a captured outbound connection -> refuse | direct TCP | HBONE tunnel | local
//   admit         a connection for a local workload (HBONE, plaintext, or same-node) -> the
//                 destination's AuthorizationPolicy / PeerAuthentication verdict and its record
import { isIPv4 } from 'node:net';
import type { Service, Workload } from '../../api/gen/nodemesh/workload/v1/workload';
import { formatSpiffeId } from '../../common/identity/spiffe';
import type { Endpoint } from '../connections/table';
import { policyContext } from '../policy/context';
import { evaluate } from '../policy/evaluate';
import type { PolicyConnection, PolicyContext, Verdict } from '../policy/model';
import type { PeerAuthenticationPolicy } from '../policy/peer-authentication';
import { waypointIdentities } from '../policy/waypoint';
import { HBONE_PORT } from '../../common/contracts/ports';
import { ipFromBytes } from '../state/ip';
import { resolve, type EndpointPicker } from '../state/resolve';
import type { WorkloadState } from '../state/workload-state';
import type { ConnectionPeer, ConnectionRecord } from '../telemetry/labels';
import { identityOf } from '../mesh/runtime';

/** What planning reads: the node's name, trust domain, workload state and which workloads it serves. */
export interface PlanView {
  readonly node: string;
  readonly trustDomain: string;
  readonly state: WorkloadState;
  /** Whether this node proxy serves the workload (enrolled here, HBONE listener open). */
  servesLocally(w: Workload): boolean;
  /** PeerAuthentication policies in force. */
  peerAuthentications(): readonly PeerAuthenticationPolicy[];
}

// Per workload object, checked against what they were made from (the state may set a local pod's
// addresses on the object in place): its SPIFFE ID and its addresses as text, asked for a few times
// per connection.
const spiffeIds = new WeakMap<Workload, { trustDomain: string; namespace: string; sa: string; wtd: string; id: string }>();
const addressTexts = new WeakMap<Workload, { of: Workload['addresses']; texts: string[] }>();

export const spiffeOf = (view: Pick<PlanView, 'trustDomain'>, w: Workload): string => {
  const c = spiffeIds.get(w);
  if (c && c.trustDomain === view.trustDomain && c.namespace === w.namespace && c.sa === w.serviceAccount && c.wtd === w.trustDomain) return c.id;
  const id = formatSpiffeId(identityOf(w, view.trustDomain));
  spiffeIds.set(w, { trustDomain: view.trustDomain, namespace: w.namespace, sa: w.serviceAccount, wtd: w.trustDomain, id });
  return id;
};

function addressesOf(w: Workload): string[] {
  const c = addressTexts.get(w);
  if (c && c.of === w.addresses) return c.texts;
  const texts = w.addresses.map(ipFromBytes);
  addressTexts.set(w, { of: w.addresses, texts });
  return texts;
}

export function policyContextFor(view: PlanView, destination: Workload, port: number): PolicyContext {
  return policyContext(view.state, destination, port, view.peerAuthentications(), view.trustDomain);
}

export type OutboundPlan =
  /** Reset the client; `reason` is logged. */
  | { readonly kind: 'refuse'; readonly reason: string }
  /** Plain TCP from the source's netns (not a mesh address, a peer that is not enrolled, or a source no longer in the workload API). */
  | { readonly kind: 'direct'; readonly target: Endpoint }
  /** HBONE to `hbone`, CONNECT `authority`, the server must prove `expected`. */
  | {
      readonly kind: 'tunnel';
      readonly source: Workload;
      readonly hbone: Endpoint;
      readonly authority: Endpoint;
      readonly expected: string;
      /** The source reporter's record (its source address is the one the tunnel leaves from). */
      readonly record: ConnectionRecord;
    }
  /** A workload served by this node proxy: handed to the inbound side (`admit`) with the source's identity. */
  | { readonly kind: 'local'; readonly source: Workload; readonly destination: Workload; readonly target: Endpoint; readonly record: ConnectionRecord };

/** The source workload's address in the family of `like` (what the peer sees as the client). */
export function sourceIp(src: Workload, like: string): string {
  const all = addressesOf(src);
  return all.find((a) => isIPv4(a) === isIPv4(like)) ?? all[0] ?? '';
}

/**
 * A captured outbound connection from `client` (the app's socket) of the enrolled workload `src`
 * (undefined: no longer in the workload API) to its original destination `dst`.
 */
export function planOutbound(view: PlanView, src: Workload | undefined, client: Endpoint, dst: Endpoint, pick: EndpointPicker): OutboundPlan {
  if (!src) return { kind: 'direct', target: dst }; // being unenrolled: as before enrolment
  const decision = resolve(view.state, { ip: dst.address, port: dst.port, network: src.network }, src, pick);
  if (decision.kind === 'passthrough') return { kind: 'direct', target: dst };
  if (decision.kind === 'unreachable') return { kind: 'refuse', reason: decision.reason };
  const service: Service | undefined = decision.kind === 'service' ? decision.service : undefined;
  const srcPeer = (srcIp: string): ConnectionPeer => ({ workload: src, identity: spiffeOf(view, src), address: srcIp, port: client.port });

  if (decision.waypoint) {
    const waypoint = decision.waypoint;
    const gw = decision.kind === 'service' ? decision.service.waypoint : decision.workload.waypoint;
    const wp = waypoint.workload ?? view.state.workloadByIp(waypoint.address);
    // The waypoint instance's own identity when it is a known workload; else the identity a
    // waypoint has by convention (service account = Gateway name), as the destination expects it.
    const expected = wp ? spiffeOf(view, wp) : gw ? waypointIdentities(view.state, gw, view.trustDomain)[0] : undefined;
    if (!expected)
      return { kind: 'refuse', reason: `the waypoint ${waypoint.address} is not a known workload and has no Gateway name (its identity cannot be checked)` };
    // A service waypoint is asked for the VIP the client dialled; a workload waypoint for the workload.
    const authority: Endpoint =
      waypoint.scope === 'service' ? dst : { address: (decision.kind === 'service' ? undefined : decision.address) ?? dst.address, port: decision.targetPort };
    return {
      kind: 'tunnel',
      source: src,
      hbone: { address: waypoint.address, port: waypoint.port },
      authority,
      expected,
      record: {
        reporter: 'source',
        source: srcPeer(sourceIp(src, waypoint.address)),
        destination: { workload: wp, identity: expected, address: waypoint.address, port: waypoint.port },
        service,
        mtls: true,
      },
    };
  }

  const endpoint = decision.kind === 'service' ? decision.endpoint : decision.workload;
  const address = decision.address;
  if (!endpoint || !address) return { kind: 'refuse', reason: 'the destination has no endpoint address' };
  const target: Endpoint = { address, port: decision.targetPort };
  if (decision.protocol === 'tcp') return { kind: 'direct', target };
  const record: ConnectionRecord = {
    reporter: 'source',
    source: srcPeer(sourceIp(src, address)),
    destination: { workload: endpoint, identity: spiffeOf(view, endpoint), address, port: target.port },
    service,
    mtls: true,
  };
  if (endpoint.node === view.node && view.servesLocally(endpoint))
    return { kind: 'local', source: src, destination: endpoint, target, record: { ...record, sameNode: true } };
  return { kind: 'tunnel', source: src, hbone: { address, port: HBONE_PORT }, authority: target, expected: spiffeOf(view, endpoint), record };
}

/** A connection for a local workload, as the inbound side sees it. */
export interface InboundRequest {
  /** The local workload it is for. */
  readonly destination: Workload;
  /** Its address and port (the app's listener). */
  readonly target: Endpoint;
  /** The client as the records name it (the app's own address:port when known). */
  readonly source: ConnectionPeer;
  /** The address policy matches `ipBlocks` against. */
  readonly sourceIp: string;
  /** Authenticated by the mesh (HBONE, or same-node where the proxy holds both identities). */
  readonly mtls: boolean;
  readonly sameNode?: boolean;
  readonly service?: ConnectionRecord['service'];
  readonly tunnelPeer?: Endpoint;
}

export interface Admission {
  readonly allowed: boolean;
  readonly verdict: Verdict;
  /** The destination reporter's record. */
  readonly record: ConnectionRecord;
  /** What policy saw (kept to re-check the open connection when policy changes). */
  readonly connection: PolicyConnection;
}

/** The destination's policy on one connection; identical for HBONE, plaintext and same-node. */
export function admit(view: PlanView, req: InboundRequest): Admission {
  const connection: PolicyConnection = {
    ...(req.mtls && req.source.identity ? { sourceIdentity: req.source.identity } : {}),
    sourceIp: req.sourceIp,
    destinationIp: req.target.address,
    destinationPort: req.target.port,
  };
  const verdict = evaluate(connection, policyContextFor(view, req.destination, req.target.port));
  const record: ConnectionRecord = {
    reporter: 'destination',
    source: req.source,
    destination: { workload: req.destination, identity: spiffeOf(view, req.destination), address: req.target.address, port: req.target.port },
    ...(req.service ? { service: req.service } : {}),
    mtls: req.mtls,
    ...(req.sameNode ? { sameNode: true } : {}),
    ...(req.tunnelPeer ? { tunnelPeer: req.tunnelPeer } : {}),
  };
  return { allowed: verdict.allowed, verdict, record, connection };
}
