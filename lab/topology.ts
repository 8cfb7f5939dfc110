// Pure planning of a lab: from (lab name, node count, pods per node, cgroup mount) to the state
// that `lab up` will create and the iproute2 batches that create it. No I/O here.
import { checkLabName, type LabNode, type LabPod, type LabTopology } from './state';

export const MAX_NODES = 50;
// 100: a node proxy's memory is judged with 100 local workloads (pod addresses .2–.101 of the node's /24)
export const MAX_PODS_PER_NODE = 100;
export const CONTROL_IP = '10.199.0.254';
export const UNDERLAY_CIDR = '10.199.0.0/24';
export const UNDERLAY_BRIDGE = 'nm-ul';
export const NODE_UNDERLAY_IF = 'nm-ul';
export const POD_BRIDGE = 'nm-pods';
export const POD_IF = 'eth0';

export interface LabShape {
  lab: string;
  nodes: number;
  podsPerNode: number;
}

export function checkShape(shape: LabShape): LabShape {
  checkLabName(shape.lab);
  const int = (v: number, max: number, flag: string): void => {
    if (!Number.isInteger(v) || v < 1 || v > max) throw new RangeError(`${flag} must be a whole number from 1 to ${max}, got ${v}`);
  };
  int(shape.nodes, MAX_NODES, '--nodes');
  int(shape.podsPerNode, MAX_PODS_PER_NODE, '--pods-per-node');
  return shape;
}

const netnsOf = (lab: string, obj: string): string => `nm-${lab}-${obj}`;
export const podName = (node: number, k: number): string => `pod${node}-${k}`;
export const nodeName = (node: number): string => `node${node}`;

export function planLab(shape: LabShape, cgroupMount: string, now = new Date()): LabTopology {
  const { lab } = checkShape(shape);
  const cgroupRoot = `${cgroupMount}/nm-${lab}`;
  const nodes: LabNode[] = [];
  const pods: LabPod[] = [];
  for (let n = 1; n <= shape.nodes; n++) {
    const name = nodeName(n);
    const podNames: string[] = [];
    for (let k = 1; k <= shape.podsPerNode; k++) {
      const pod = podName(n, k);
      podNames.push(pod);
      pods.push({
        name: pod,
        node: name,
        index: k,
        netns: netnsOf(lab, pod),
        netnsPath: `/run/netns/${netnsOf(lab, pod)}`,
        ip: `10.200.${n}.${k + 1}`,
        cidr: `10.200.${n}.0/24`,
        gateway: `10.200.${n}.1`,
        ifName: POD_IF,
        hostIfName: `nm-${pod}`,
        cgroup: `${cgroupRoot}/${pod}`,
      });
    }
    nodes.push({
      name,
      index: n,
      netns: netnsOf(lab, name),
      netnsPath: `/run/netns/${netnsOf(lab, name)}`,
      underlayIp: `10.199.0.${n}`,
      underlayIfName: NODE_UNDERLAY_IF,
      podBridge: POD_BRIDGE,
      podCidr: `10.200.${n}.0/24`,
      podGateway: `10.200.${n}.1`,
      cgroup: `${cgroupRoot}/${name}`,
      bpffsDir: `/sys/fs/bpf/nodemesh/${lab}-${name}`,
      pods: podNames,
    });
  }
  return {
    version: 1,
    lab,
    phase: 'creating',
    createdAt: now.toISOString(),
    cgroupMount,
    cgroupRoot,
    underlay: { netns: netnsOf(lab, 'underlay'), netnsPath: `/run/netns/${netnsOf(lab, 'underlay')}`, bridge: UNDERLAY_BRIDGE, cidr: UNDERLAY_CIDR },
    nodes,
    pods,
    control: {
      name: 'control',
      netns: netnsOf(lab, 'control'),
      netnsPath: `/run/netns/${netnsOf(lab, 'control')}`,
      ip: CONTROL_IP,
      ifName: NODE_UNDERLAY_IF,
      cgroup: `${cgroupRoot}/control`,
    },
  };
}

/** Every netns of a lab, underlay first. */
export function allNetns(t: LabTopology): string[] {
  return [t.underlay.netns, t.control.netns, ...t.nodes.map((n) => n.netns), ...t.pods.map((p) => p.netns)];
}

/** Every cgroup of a lab, parent first. */
export function allCgroups(t: LabTopology): string[] {
  return [t.cgroupRoot, t.control.cgroup, ...t.nodes.map((n) => n.cgroup), ...t.pods.map((p) => p.cgroup)];
}

/** One `ip -batch` run: the netns it runs in and its lines. */
export interface IpBatch {
  netns: string;
  lines: string[];
}

/**
 * A lab bridge's own MAC address, set by hand. A Linux bridge without one takes the lowest MAC of
 * its ports and changes it whenever a port comes or goes — a waypoint pod's veth, added and removed
 * while the lab runs. The pods' neighbour entries for their gateway then name a MAC the bridge no
 * longer takes as its own, and every connection they have through the gateway (all cross-node
 * traffic, HBONE included) goes silent — no FIN, no RST — until each entry is resolved again,
 * 15–60 s later. A MAC set by hand never follows the ports. Locally administered (02:), "nm", then
 * the bridge: 00 00 01 the underlay, 01 <node index> the node's pod bridge.
 */
export function bridgeMac(bridge: { underlay: true } | { node: number }): string {
  const tail = 'underlay' in bridge ? [0, 0, 1] : [1, bridge.node >> 8, bridge.node & 0xff];
  return ['02', '6e', '6d', ...tail.map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/**
 * A pod's MAC address, fixed by its IP address (10.200.N.K → 02:6e:6d:02:N:K). A waypoint pod is
 * removed and made again at the same address (a Gateway deleted and applied again, a restart): with
 * a random MAC each time, the other pods' and the node's neighbour entries for that address kept
 * naming the old pod's MAC, and connections to the new pod timed out until each entry was resolved
 * again (a curl → waypoint CONNECT: ETIMEDOUT after ~15 s). The same address now always has the
 * same MAC.
 */
export function podMac(ip: string): string {
  const octets = ip.split('.').map(Number);
  if (octets.length !== 4 || octets.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  const hex = (x: number): string => x.toString(16).padStart(2, '0');
  return `02:6e:6d:02:${hex(octets[2] as number)}:${hex(octets[3] as number)}`;
}

/** The underlay bridge and one veth per node (and the control host), made inside the underlay netns. */
export function underlayBatch(t: LabTopology): IpBatch {
  const lines = [
    'link set lo up',
    `link add ${UNDERLAY_BRIDGE} type bridge`,
    `link set ${UNDERLAY_BRIDGE} address ${bridgeMac({ underlay: true })}`,
    `link set ${UNDERLAY_BRIDGE} up`,
  ];
  const ports: Array<[string, string]> = [...t.nodes.map((n): [string, string] => [`nm-${n.name}`, n.netns]), ['nm-control', t.control.netns]];
  for (const [port, peerNs] of ports) {
    lines.push(`link add ${port} type veth peer name ${NODE_UNDERLAY_IF} netns ${peerNs}`, `link set ${port} master ${UNDERLAY_BRIDGE}`, `link set ${port} up`);
  }
  return { netns: t.underlay.netns, lines };
}

/** A node: its underlay address, its pod bridge with one veth per pod, routes to the other nodes' pods. */
export function nodeBatch(t: LabTopology, node: LabNode): IpBatch {
  const lines = [
    'link set lo up',
    `addr add ${node.underlayIp}/24 dev ${node.underlayIfName}`,
    `link set ${node.underlayIfName} up`,
    `link add ${node.podBridge} type bridge`,
    `link set ${node.podBridge} address ${bridgeMac({ node: node.index })}`,
    `addr add ${node.podGateway}/24 dev ${node.podBridge}`,
    `link set ${node.podBridge} up`,
  ];
  for (const pod of t.pods.filter((p) => p.node === node.name)) {
    lines.push(
      `link add ${pod.hostIfName} type veth peer name ${pod.ifName} netns ${pod.netns}`,
      `link set ${pod.hostIfName} master ${node.podBridge}`,
      `link set ${pod.hostIfName} up`,
    );
  }
  for (const other of t.nodes) if (other.name !== node.name) lines.push(`route add ${other.podCidr} via ${other.underlayIp}`);
  return { netns: node.netns, lines };
}

export function controlBatch(t: LabTopology): IpBatch {
  const c = t.control;
  const lines = ['link set lo up', `addr add ${c.ip}/24 dev ${c.ifName}`, `link set ${c.ifName} up`];
  for (const n of t.nodes) lines.push(`route add ${n.podCidr} via ${n.underlayIp}`);
  return { netns: c.netns, lines };
}

export function podBatch(pod: LabPod): IpBatch {
  return {
    netns: pod.netns,
    lines: ['link set lo up', `addr add ${pod.ip}/24 dev ${pod.ifName}`, `link set ${pod.ifName} up`, `route add default via ${pod.gateway}`],
  };
}
