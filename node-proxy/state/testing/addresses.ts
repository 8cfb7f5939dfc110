// Workload-API Addresses for the node proxy's unit tests: a healthy HBONE Workload on node-1 or a
// Service with one port (80 -> 8080), in one namespace, and a WorkloadState fed with them as its
// xDS client would. Never used by the node proxy at run time.
import { Address, type Service, TunnelProtocol, type Workload, WorkloadStatus } from '../../../api/gen/nodemesh/workload/v1/workload';
import { ipBytes } from '../../../common/ip';
import type { WorkloadState } from '../workload-state';

export type WorkloadInit = NonNullable<Parameters<typeof Workload.fromPartial>[0]>;
export type ServiceInit = NonNullable<Parameters<typeof Service.fromPartial>[0]>;
type AddressInit = Parameters<typeof Address.fromPartial>[0];

export interface AddressBuilders {
  /** Workload `name` at `ip`: uid Workload/<ns>/<name>, service account `name`, node-1, HBONE, healthy; `init` overrides. */
  workload(name: string, ip: string, init?: WorkloadInit): Address;
  /** Service `name` with VIP `vip`, host <name>.<ns>.svc.cluster.local, port 80 -> 8080; `init` overrides. */
  service(name: string, vip: string, init?: ServiceInit): Address;
}

export function addressesIn(namespace: string): AddressBuilders {
  return {
    workload: (name, ip, init = {}) =>
      Address.fromPartial({
        type: {
          $case: 'workload',
          value: {
            uid: `Workload/${namespace}/${name}`,
            name,
            namespace,
            addresses: [ipBytes(ip)],
            serviceAccount: name,
            node: 'node-1',
            tunnelProtocol: TunnelProtocol.TUNNEL_PROTOCOL_HBONE,
            status: WorkloadStatus.WORKLOAD_STATUS_HEALTHY,
            ...init,
          },
        },
      } as AddressInit),
    service: (name, vip, init = {}) =>
      Address.fromPartial({
        type: {
          $case: 'service',
          value: {
            name,
            namespace,
            hostname: `${name}.${namespace}.svc.cluster.local`,
            addresses: [{ network: '', address: ipBytes(vip) }],
            ports: [{ servicePort: 80, targetPort: 8080 }],
            ...init,
          },
        },
      } as AddressInit),
  };
}

/** The xDS resource name of an Address: a Workload's uid, a Service's "<namespace>/<hostname>". */
export function addressName(a: Address): string {
  if (a.type?.$case === 'workload') return a.type.value.uid;
  if (a.type?.$case === 'service') return `${a.type.value.namespace}/${a.type.value.hostname}`;
  return '';
}

/** Applies Addresses to a WorkloadState as an xDS update would. */
export function putAddresses(state: WorkloadState, ...addresses: Address[]): void {
  state.applyAddresses({ updated: addresses.map((value) => ({ name: addressName(value), version: 'v', value })), removed: [] });
}
