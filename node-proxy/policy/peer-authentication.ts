// Which PeerAuthentication mode is in force for a connection to a workload port. Istio's
// precedence: a workload-selector policy's port-level setting, then its workload-wide setting,
// then the namespace's policy, then the mesh-wide one (root namespace, no selector); UNSET
// inherits from the next level; with nothing set the mode is PERMISSIVE.
// This reads a small model of it; node-proxy/state maps the workload API's PeerAuthentication
// type onto it (WorkloadState.peerAuthenticationsFor / peerAuthenticationPolicies, docs/policy.md).
import type { MtlsMode, PeerAuthenticationDecision } from './model';

export type MtlsSetting = MtlsMode | 'UNSET';

export interface PeerAuthenticationPolicy {
  readonly name: string;
  readonly namespace: string;
  readonly scope: 'mesh' | 'namespace' | 'workload';
  /** For scope 'workload': the uids of the workloads its selector picks. */
  readonly workloads?: readonly string[];
  readonly mode: MtlsSetting;
  /** Workload port -> mode (scope 'workload' only). */
  readonly portLevel?: Readonly<Record<number, MtlsSetting>>;
}

export interface PeerAuthenticationTarget {
  readonly uid: string;
  readonly namespace: string;
}

const key = (p: PeerAuthenticationPolicy): string => `${p.namespace}/${p.name}`;
// Istio: when several policies apply at one level, the oldest wins; without creation times here,
// the first by name wins so the choice is at least stable.
const first = (list: PeerAuthenticationPolicy[]): PeerAuthenticationPolicy | undefined => list.sort((a, b) => (key(a) < key(b) ? -1 : 1))[0];

export function effectivePeerAuthentication(
  policies: readonly PeerAuthenticationPolicy[],
  target: PeerAuthenticationTarget,
  port: number,
): PeerAuthenticationDecision {
  const workload = first(policies.filter((p) => p.scope === 'workload' && p.namespace === target.namespace && p.workloads?.includes(target.uid)));
  const namespace = first(policies.filter((p) => p.scope === 'namespace' && p.namespace === target.namespace));
  const mesh = first(policies.filter((p) => p.scope === 'mesh'));
  const levels: Array<[PeerAuthenticationPolicy | undefined, MtlsSetting | undefined]> = [
    [workload, workload?.portLevel?.[port]],
    [workload, workload?.mode],
    [namespace, namespace?.mode],
    [mesh, mesh?.mode],
  ];
  for (const [policy, mode] of levels) {
    if (policy && mode && mode !== 'UNSET') return { mode, policy: key(policy) };
  }
  return { mode: 'PERMISSIVE' };
}
