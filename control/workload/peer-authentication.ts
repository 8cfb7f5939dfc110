// Translation of a PeerAuthentication resource into the workload API's PeerAuthentication
// message (pure). Scope: a non-empty selector -> WORKLOAD_SELECTOR (the workloads it selects list
// it in Workload.peer_authentication_policies); no selector in the root namespace -> MESH; no
// selector elsewhere -> NAMESPACE. An empty matchLabels counts as no selector (Istio). Port-level
// modes apply to selected workloads only, so they are sent for WORKLOAD_SELECTOR alone.
import { MtlsMode, PeerAuthentication, PeerAuthenticationScope } from '../../api/gen/nodemesh/workload/v1/workload';
import type { PeerAuthentication as PeerAuthenticationResource, MtlsMode as ResourceMtlsMode } from '../resources/peer-authentication';

const MODES: Readonly<Record<ResourceMtlsMode, MtlsMode>> = {
  UNSET: MtlsMode.MTLS_MODE_UNSET,
  PERMISSIVE: MtlsMode.MTLS_MODE_PERMISSIVE,
  STRICT: MtlsMode.MTLS_MODE_STRICT,
};

/** The selector's labels when the policy selects workloads, else undefined (namespace or mesh wide). */
export function peerAuthenticationSelector(pa: PeerAuthenticationResource): Readonly<Record<string, string>> | undefined {
  const labels = pa.spec?.selector?.matchLabels;
  return labels && Object.keys(labels).length > 0 ? labels : undefined;
}

export function translatePeerAuthentication(pa: PeerAuthenticationResource, rootNamespace: string): PeerAuthentication {
  const namespace = pa.metadata.namespace ?? '';
  const selected = peerAuthenticationSelector(pa) !== undefined;
  const scope = selected
    ? PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_WORKLOAD_SELECTOR
    : namespace === rootNamespace
      ? PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_MESH
      : PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_NAMESPACE;
  const portLevelMtls: Record<number, MtlsMode> = {};
  if (selected) {
    for (const port of Object.keys(pa.spec?.portLevelMtls ?? {})
      .map(Number)
      .sort((a, b) => a - b)) {
      portLevelMtls[port] = MODES[pa.spec!.portLevelMtls![String(port)]!.mode];
    }
  }
  return PeerAuthentication.fromPartial({
    name: pa.metadata.name,
    namespace,
    scope,
    mode: MODES[pa.spec?.mtls?.mode ?? 'UNSET'],
    portLevelMtls,
  });
}
