// Where a waypoint runs in the lab (pure): its pod ("wp-<gateway>", a netns and cgroup of its own on
// the least-loaded node, address 10.200.N.(200+slot)), the Workload that describes it to the mesh,
// and the argv of `nodemesh waypoint run` for it. No I/O here.
import { DATAPLANE_MODE_LABEL, GATEWAY_NAME_LABEL } from '../../common/contracts/labels';
import { WAYPOINT_NODE_FLAGS } from '../../waypoint/process-flags';
import { labCertTtl } from '../mesh/proxies';
import type { LabPod, LabTopology } from '../state';
import { podMac } from '../topology';

/** Waypoint pods take the top of a node's pod range: 10.200.N.201 … .250 (ordinary pods use .2 … .51). */
export const WAYPOINT_SLOT_BASE = 200;
export const MAX_WAYPOINTS_PER_NODE = 50;
export const LAB_POD_LABEL = 'nodemesh.io/lab-pod';

/** One waypoint pod of the lab, as recorded under <state dir>/waypoints/. */
export interface WaypointPod {
  /** The Gateway it serves. */
  gateway: { namespace: string; name: string };
  pod: LabPod;
  slot: number;
}

export const gatewayKey = (g: { namespace: string; name: string }): string => `${g.namespace}/${g.name}`;

/** The pod name: `wp-<gateway>`, or `wp-<gateway>-<namespace>` when another namespace's waypoint took it. */
export function waypointPodName(g: { namespace: string; name: string }, taken: ReadonlySet<string>): string {
  const plain = `wp-${g.name}`;
  if (!taken.has(plain)) return plain;
  const withNs = `wp-${g.name}-${g.namespace}`;
  if (!taken.has(withNs)) return withNs;
  for (let i = 2; ; i++) if (!taken.has(`${withNs}-${i}`)) return `${withNs}-${i}`;
}

/**
 * The node with the least load (waypoint pods plus running app processes on it); ties go to the
 * lower node index, so placement is stable.
 */
export function leastLoadedNode(t: LabTopology, load: ReadonlyMap<string, number>): string {
  const first = t.nodes[0];
  if (!first) throw new Error(`lab '${t.lab}' has no nodes`);
  let best = first;
  for (const n of t.nodes) if ((load.get(n.name) ?? 0) < (load.get(best.name) ?? 0)) best = n;
  return best.name;
}

/** Load per node: waypoint pods on it, and recorded processes in its pods (not the node proxy, which every node has). */
export function nodeLoad(t: LabTopology, wps: readonly WaypointPod[], processPlaces: readonly string[]): Map<string, number> {
  const load = new Map(t.nodes.map((n) => [n.name, 0]));
  const bump = (node: string | undefined): void => void (node && load.set(node, (load.get(node) ?? 0) + 1));
  for (const w of wps) bump(w.pod.node);
  for (const place of processPlaces) bump(t.pods.find((p) => p.name === place)?.node);
  return load;
}

/** The pod for a new waypoint on `node`: the lowest free slot, its netns, veth and cgroup names. */
export function planWaypointPod(t: LabTopology, g: { namespace: string; name: string }, node: string, existing: readonly WaypointPod[]): WaypointPod {
  const n = t.nodes.find((x) => x.name === node);
  if (!n) throw new Error(`lab '${t.lab}' has no node '${node}'`);
  const used = new Set(existing.filter((w) => w.pod.node === node).map((w) => w.slot));
  let slot = 1;
  while (used.has(slot)) slot++;
  if (slot > MAX_WAYPOINTS_PER_NODE) throw new RangeError(`node ${node} already runs ${MAX_WAYPOINTS_PER_NODE} waypoints; delete some`);
  const name = waypointPodName(g, new Set([...existing.map((w) => w.pod.name), ...t.pods.map((p) => p.name)]));
  const netns = `nm-${t.lab}-${name}`;
  return {
    gateway: { namespace: g.namespace, name: g.name },
    slot,
    pod: {
      name,
      node,
      index: WAYPOINT_SLOT_BASE + slot,
      netns,
      netnsPath: `/run/netns/${netns}`,
      ip: `10.200.${n.index}.${WAYPOINT_SLOT_BASE + slot}`,
      cidr: n.podCidr,
      gateway: n.podGateway,
      ifName: 'eth0',
      // at most 15 characters (IFNAMSIZ): nm-wp<node>-<slot>
      hostIfName: `nm-wp${n.index}-${slot}`,
      cgroup: `${t.cgroupRoot}/${name}`,
    },
  };
}

/** The iproute2 lines run in the node's netns: the veth into the waypoint pod, on the pod bridge. */
export function waypointNodeLines(t: LabTopology, w: WaypointPod): string[] {
  const n = t.nodes.find((x) => x.name === w.pod.node);
  if (!n) throw new Error(`lab '${t.lab}' has no node '${w.pod.node}'`);
  return [
    `link add ${w.pod.hostIfName} type veth peer name ${w.pod.ifName} address ${podMac(w.pod.ip)} netns ${w.pod.netns}`,
    `link set ${w.pod.hostIfName} master ${n.podBridge}`,
    `link set ${w.pod.hostIfName} up`,
  ];
}

/**
 * The waypoint's Workload: in the Gateway's namespace, service account = the Gateway's name (the CA
 * signs the waypoint's identity only for it), the gateway-name label that tells control/workload
 * where the waypoint is, and NOT enrolled — the waypoint terminates HBONE itself.
 */
export function waypointWorkload(w: WaypointPod): Record<string, unknown> {
  return {
    apiVersion: 'nodemesh.io/v1alpha1',
    kind: 'Workload',
    metadata: {
      name: w.pod.name,
      namespace: w.gateway.namespace,
      labels: { [GATEWAY_NAME_LABEL]: w.gateway.name, [DATAPLANE_MODE_LABEL]: 'none', [LAB_POD_LABEL]: w.pod.name },
    },
    spec: { serviceAccount: w.gateway.name, node: w.pod.node, addresses: [w.pod.ip], netnsPath: w.pod.netnsPath, cgroupPath: w.pod.cgroup },
  };
}

export interface WaypointRunFiles {
  cliEntry: string;
  nodeToken: string;
  trustBundle: string;
  control: string;
}

/** `nodemesh waypoint run` for this pod, with its node's token and the waypoint's process flags (waypoint/process-flags.ts). */
export function waypointArgv(w: WaypointPod, f: WaypointRunFiles, node = process.execPath): string[] {
  return [
    node,
    ...WAYPOINT_NODE_FLAGS,
    f.cliEntry,
    'waypoint',
    'run',
    '--name',
    w.gateway.name,
    '-n',
    w.gateway.namespace,
    '--control',
    f.control,
    '--token-file',
    f.nodeToken,
    '--trust-bundle',
    f.trustBundle,
    '--ip',
    w.pod.ip,
    ...labCertTtl(),
  ];
}
