// The workload API types as the xDS client reads them: decoders plus validators that refuse
// (NACK) what the node proxy could not act on safely, so a bad push never replaces good state.
import {
  Address,
  Authorization,
  MtlsMode,
  PeerAuthentication,
  PeerAuthenticationScope,
  type GatewayAddress,
  type Match,
} from '../../api/gen/nodemesh/workload/v1/workload';
import type { ResourceType } from '../../common/xds/types';

export const ADDRESS_TYPE_URL = 'type.googleapis.com/nodemesh.workload.v1.Address';
export const AUTHORIZATION_TYPE_URL = 'type.googleapis.com/nodemesh.workload.v1.Authorization';
export const PEER_AUTHENTICATION_TYPE_URL = 'type.googleapis.com/nodemesh.workload.v1.PeerAuthentication';

const ipLengthOk = (b: Uint8Array): boolean => b.length === 4 || b.length === 16;

export function addressProblem(name: string, a: Address): string | undefined {
  switch (a.type?.$case) {
    case 'workload': {
      const w = a.type.value;
      if (!w.uid) return 'a workload without a uid';
      if (w.uid !== name) return `the workload's uid ${w.uid} differs from its resource name`;
      const bad = w.addresses.find((x) => !ipLengthOk(x));
      if (bad) return `workload address of ${bad.length} bytes (an IP address has 4 or 16)`;
      return w.waypoint ? waypointProblem(w.waypoint) : undefined;
    }
    case 'service': {
      const s = a.type.value;
      if (!s.hostname || !s.namespace) return 'a service without a hostname or namespace';
      const bad = s.addresses.find((x) => !ipLengthOk(x.address));
      if (bad) return `service VIP of ${bad.address.length} bytes (an IP address has 4 or 16)`;
      const port = s.ports.find((p) => p.servicePort < 1 || p.servicePort > 65535 || p.targetPort > 65535);
      if (port) return `service port ${port.servicePort}->${port.targetPort} is out of range`;
      return s.waypoint ? waypointProblem(s.waypoint) : undefined;
    }
    default:
      return 'neither a workload nor a service';
  }
}

function waypointProblem(gw: GatewayAddress): string | undefined {
  if (gw.destination?.$case === 'address' && !ipLengthOk(gw.destination.value.address)) {
    return `waypoint address of ${gw.destination.value.address.length} bytes (an IP address has 4 or 16)`;
  }
  return undefined;
}

function matchProblem(m: Match): string | undefined {
  for (const c of [...m.sourceIps, ...m.notSourceIps, ...m.destinationIps, ...m.notDestinationIps]) {
    if (!ipLengthOk(c.address)) return `a CIDR address of ${c.address.length} bytes`;
    if (c.length > c.address.length * 8) return `a CIDR prefix /${c.length} longer than the address`;
  }
  const port = [...m.destinationPorts, ...m.notDestinationPorts].find((p) => p < 1 || p > 65535);
  if (port !== undefined) return `port ${port} is out of range`;
  const empty = [...m.principals, ...m.notPrincipals, ...m.namespaces, ...m.notNamespaces].find((s) => !s.matchType);
  if (empty) return 'a string match without exact, prefix, suffix or presence';
  return undefined;
}

export function authorizationProblem(name: string, a: Authorization): string | undefined {
  if (!a.name || `${a.namespace}/${a.name}` !== name) return `resource name ${name} is not "<namespace>/<name>" of the policy`;
  for (const rule of a.rules)
    for (const clause of rule.clauses)
      for (const m of clause.matches) {
        const p = matchProblem(m);
        if (p) return p;
      }
  return undefined;
}

export const AddressResource: ResourceType<Address> = {
  typeUrl: ADDRESS_TYPE_URL,
  decode: (bytes) => Address.decode(bytes),
  validate: addressProblem,
};

export const AuthorizationResource: ResourceType<Authorization> = {
  typeUrl: AUTHORIZATION_TYPE_URL,
  decode: (bytes) => Authorization.decode(bytes),
  validate: authorizationProblem,
};

const MTLS_MODES = new Set<number>([MtlsMode.MTLS_MODE_UNSET, MtlsMode.MTLS_MODE_PERMISSIVE, MtlsMode.MTLS_MODE_STRICT]);
const PEER_AUTHENTICATION_SCOPES = new Set<number>([
  PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_MESH,
  PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_NAMESPACE,
  PeerAuthenticationScope.PEER_AUTHENTICATION_SCOPE_WORKLOAD_SELECTOR,
]);

export function peerAuthenticationProblem(name: string, p: PeerAuthentication): string | undefined {
  if (!p.name || `${p.namespace}/${p.name}` !== name) return `resource name ${name} is not "<namespace>/<name>" of the policy`;
  // An unknown mode or scope (a newer control plane) cannot be enforced safely: refuse the push.
  if (!PEER_AUTHENTICATION_SCOPES.has(p.scope)) return `unknown scope ${p.scope}`;
  if (!MTLS_MODES.has(p.mode)) return `unknown mTLS mode ${p.mode}`;
  for (const [port, mode] of Object.entries(p.portLevelMtls)) {
    const n = Number(port);
    if (!Number.isInteger(n) || n < 1 || n > 65535) return `port-level mTLS for port ${port}, which is out of range`;
    if (!MTLS_MODES.has(mode)) return `unknown mTLS mode ${mode} for port ${port}`;
  }
  return undefined;
}

export const PeerAuthenticationResource: ResourceType<PeerAuthentication> = {
  typeUrl: PEER_AUTHENTICATION_TYPE_URL,
  decode: (bytes) => PeerAuthentication.decode(bytes),
  validate: peerAuthenticationProblem,
};

/** Every workload API type a node proxy follows (give them all to its DeltaXdsClient). */
export const WORKLOAD_API_RESOURCE_TYPES: ReadonlyArray<ResourceType<unknown>> = [
  AddressResource as ResourceType<unknown>,
  AuthorizationResource as ResourceType<unknown>,
  PeerAuthenticationResource as ResourceType<unknown>,
];
