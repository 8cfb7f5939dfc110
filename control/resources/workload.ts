// nodemesh.io/v1alpha1 Workload: a process group on a host that the mesh captures — its identity
// (service account), node, addresses, and where its network namespace and cgroup are. On
// Kubernetes, Pods play this part. Labels live in metadata.labels, as on a Pod.
import { z } from 'zod';
import { cidr, dnsSubdomain, ipAddress, portName, portNumber, protocol } from './fields';
import type { Resource } from './meta';

export const workloadPort = z.strictObject({
  name: portName.optional(),
  port: portNumber,
  protocol: protocol.default('TCP'),
});
export type WorkloadPort = z.output<typeof workloadPort>;

/**
 * On a Workload mirrored from a Kubernetes Pod: the pod's metadata.uid. The workload API carries it
 * as Workload.pod_uid (and workload_type "Pod").
 */
export const POD_UID_ANNOTATION = 'nodemesh.io/pod-uid';

const absolutePath = z.string().regex(/^\/[^\0]*$/, 'must be an absolute path');

const workloadFields = {
  /** The SPIFFE identity is spiffe://<trust-domain>/ns/<namespace>/sa/<serviceAccount>. */
  serviceAccount: dnsSubdomain.default('default'),
  /** Name of the node whose node proxy captures this workload. */
  node: dnsSubdomain,
  addresses: z.array(ipAddress).min(1, 'a Workload needs at least one address'),
  /** Ports the workload listens on; names make Service targetPorts by name resolvable. */
  ports: z.array(workloadPort).optional(),
  /** The workload's network namespace, e.g. /var/run/netns/nm-pod-a or /proc/<pid>/ns/net. */
  netnsPath: absolutePath.optional(),
  /** The workload's cgroup v2 directory, e.g. /sys/fs/cgroup/unified/nodemesh/pod-a. */
  cgroupPath: absolutePath.optional(),
  /** Inbound ports that capture leaves alone (traffic reaches the app directly). */
  excludeInboundPorts: z.array(portNumber).optional(),
  /** Outbound destination ports that capture leaves alone. */
  excludeOutboundPorts: z.array(portNumber).optional(),
  /** Outbound destination ranges that capture leaves alone. */
  excludeOutboundCIDRs: z.array(cidr).optional(),
};

function uniqueAddressesAndPortNames(spec: { addresses: string[]; ports?: WorkloadPort[] }, ctx: z.RefinementCtx): void {
  const seen = new Map<string, number>();
  spec.addresses.forEach((a, i) => {
    const prev = seen.get(a);
    if (prev !== undefined) ctx.addIssue({ code: 'custom', path: ['addresses', i], message: `duplicate address ${a} (also spec.addresses[${prev}])` });
    else seen.set(a, i);
  });
  const names = new Map<string, number>();
  spec.ports?.forEach((p, i) => {
    if (p.name === undefined) return;
    const prev = names.get(p.name);
    if (prev !== undefined) ctx.addIssue({ code: 'custom', path: ['ports', i, 'name'], message: `duplicate port name "${p.name}" (also spec.ports[${prev}])` });
    else names.set(p.name, i);
  });
}

export const workloadSpec = z.strictObject(workloadFields).superRefine(uniqueAddressesAndPortNames);

/**
 * The spec of a Workload mirrored from a Kubernetes Pod (control/kubernetes/translate.ts): the same
 * fields, but `addresses` may be empty — a Pod is published once it is scheduled, before kubelet
 * gives it an IP (which happens only after the CNI ADD, and the ADD waits for the Workload). Never
 * accepted from the config API or a CRD: only the Kubernetes source validates with it.
 */
export const podWorkloadSpec = z.strictObject({ ...workloadFields, addresses: z.array(ipAddress) }).superRefine(uniqueAddressesAndPortNames);

export type WorkloadSpec = z.output<typeof workloadSpec>;
export type Workload = Resource<'Workload', WorkloadSpec>;
