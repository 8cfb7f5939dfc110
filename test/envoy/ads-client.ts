// Building DiscoveryRequests for raw ADS test clients.
import { DiscoveryRequest } from '../../api/gen/envoy/service/discovery/v3/discovery';

export interface DeepPartialRequest {
  typeUrl: string;
  versionInfo?: string;
  responseNonce?: string;
  resourceNames?: string[];
  node?: { id: string };
  errorDetail?: { code: number; message: string };
}

export function sotwRequest(r: DeepPartialRequest): DiscoveryRequest {
  return DiscoveryRequest.fromPartial({
    typeUrl: r.typeUrl,
    versionInfo: r.versionInfo ?? '',
    responseNonce: r.responseNonce ?? '',
    resourceNames: r.resourceNames ?? [],
    ...(r.node ? { node: { id: r.node.id } } : {}),
    ...(r.errorDetail ? { errorDetail: r.errorDetail } : {}),
  });
}
