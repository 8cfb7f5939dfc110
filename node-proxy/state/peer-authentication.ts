// The workload API's PeerAuthentication as node-proxy/policy's model reads it
// (PeerAuthenticationPolicy), so effectivePeerAuthentication() applies Istio's precedence to what
// the control plane pushed: port level > workload > namespace > mesh, UNSET inherits, default
// PERMISSIVE.
import { MtlsMode, PeerAuthenticationScope, type PeerAuthentication } from '../../api/gen/nodemesh/workload/v1/workload';
import type { MtlsSetting, PeerAuthenticationPolicy } from '../policy/peer-authentication';

export function mtlsSetting(mode: MtlsMode): MtlsSetting {
  switch (mode) {
    case MtlsMode.MTLS_MODE_STRICT:
      return 'STRICT';
    case MtlsMode.MTLS_MODE_PERMISSIVE:
      return 'PERMISSIVE';
    default:
      return 'UNSET';
  }
}

function scopeOf(scope: PeerAuthenticationScope): PeerAuthenticationPolicy['scope'] {
  switch (scope) {
    case PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_WORKLOAD_SELECTOR:
      return 'workload';
    case PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_NAMESPACE:
      return 'namespace';
    default:
      return 'mesh';
  }
}

/**
 * The policy model of one PeerAuthentication. `workloads`: for a workload-selector policy, the
 * uids of the workloads that list it (Workload.peer_authentication_policies).
 */
export function peerAuthenticationPolicy(pa: PeerAuthentication, workloads: readonly string[] = []): PeerAuthenticationPolicy {
  const scope = scopeOf(pa.scope);
  const portLevel: Record<number, MtlsSetting> = {};
  for (const [port, mode] of Object.entries(pa.portLevelMtls)) portLevel[Number(port)] = mtlsSetting(mode);
  return {
    name: pa.name,
    namespace: pa.namespace,
    scope,
    mode: mtlsSetting(pa.mode),
    ...(scope === 'workload' ? { workloads, portLevel } : {}),
  };
}
