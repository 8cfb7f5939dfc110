// The workload API types as the xDS client reads them: decoders plus validators that refuse
// (NACK) what the node proxy could not act on safely, so a bad push never replaces good state.
import { Address, Authorization, type Match } from '../../api/gen/nodemesh/workload/v1/workload';
import type { ResourceType } from '../../common/xds/types';

export const ADDRESS_TYPE_URL = 'type.googleapis.com/nodemesh.workload.v1.Address';
export const AUTHORIZATION_TYPE_URL = 'type.googleapis.com/nodemesh.workload.v1.Authorization';

const ipLengthOk = (b: Uint8Array): boolean => b.length === 4 || b.length === 16;

export function addressProblem(name: string, a: Address): string | undefined {
  switch (a.type?.$case) {
    case 'workload': {
      const w = a.type.value;
      if (!w.uid) return 'a workload without a uid';
      if (w.uid !== name) return `the workload's uid ${w.uid} differs from its resource name`;
      const bad = w.addresses.find((x) => !ipLengthOk(x));
      if (bad) return `workload address of ${bad.length} bytes (an IP address has 4 or 16)`;
      return undefined;
    }
    case 'service': {
      const s = a.type.value;
      if (!s.hostname || !s.namespace) return 'a service without a hostname or namespace';
      const bad = s.addresses.find((x) => !ipLengthOk(x.address));
      if (bad) return `service VIP of ${bad.address.length} bytes (an IP address has 4 or 16)`;
      const port = s.ports.find((p) => p.servicePort < 1 || p.servicePort > 65535 || p.targetPort > 65535);
      if (port) return `service port ${port.servicePort}->${port.targetPort} is out of range`;
      return undefined;
    }
    default:
      return 'neither a workload nor a service';
  }
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
  for (const rule of a.rules) for (const clause of rule.clauses) for (const m of clause.matches) {
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
