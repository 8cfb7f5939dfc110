// Pure: what the node proxy reads off a workload API Workload — where to capture it (netns,
// cgroup) and which SPIFFE identity it has.
import { isAbsolute, join } from 'node:path';
import type { Workload } from '../../api/gen/nodemesh/workload/v1/workload';
import { identity, type Identity } from '../../common/identity/spiffe';
import { ipFromBytes } from '../state/ip';
import type { CaptureWorkload } from '../capture/workload';

/** "namespace/name", the key capture uses for a workload. */
export const keyOf = (w: Pick<Workload, 'namespace' | 'name'>): string => `${w.namespace}/${w.name}`;

/**
 * The workload's cgroup directory. The workload API carries it relative to the cgroup v2 mount
 * ("/nodemesh/pod-a"); an absolute path already below the mount is taken as it is.
 */
export function cgroupDirOf(path: string, cgroupMount: string): string {
  const mount = cgroupMount.replace(/\/+$/, '');
  if (path === mount || path.startsWith(`${mount}/`)) return path;
  return join(mount, isAbsolute(path) ? path.slice(1) : path);
}

/** The capture settings of a workload, or why it cannot be captured. */
export function captureWorkloadOf(w: Workload, cgroupMount: string): CaptureWorkload | { problem: string } {
  const netns = w.runtime?.netns ?? '';
  const cgroup = w.runtime?.cgroup ?? '';
  if (!netns || !cgroup) {
    return { problem: `workload ${keyOf(w)} carries no ${!netns ? 'netnsPath' : 'cgroupPath'}; set spec.netnsPath and spec.cgroupPath on the Workload` };
  }
  if (w.addresses.length === 0) return { problem: `workload ${keyOf(w)} has no address` };
  return {
    name: w.name,
    namespace: w.namespace,
    netnsPath: netns,
    cgroupPath: cgroupDirOf(cgroup, cgroupMount),
    addresses: w.addresses.map(ipFromBytes),
    excludedOutboundPorts: [],
    excludedInboundPorts: [],
    excludedCidrs: [],
  };
}

/** spiffe://<td>/ns/<namespace>/sa/<serviceAccount> of a workload. */
export function identityOf(w: Pick<Workload, 'namespace' | 'serviceAccount' | 'trustDomain'>, trustDomain: string): Identity {
  return identity(w.namespace, w.serviceAccount || 'default', w.trustDomain || trustDomain);
}

/** Whether `ip` (canonical text) is one of the workload's addresses. */
export function ownsAddress(w: Pick<Workload, 'addresses'>, ip: string): boolean {
  return w.addresses.some((a) => ipFromBytes(a) === ip);
}
