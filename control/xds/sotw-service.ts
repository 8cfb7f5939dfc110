// The AggregatedDiscoveryService with both variants served: delta (delta-server.ts, the xds
// engineer's serializer) and state of the world (sotw-server.ts, pre-encoded frames). Register
// this definition instead of service.ts's adsServiceDefinition to serve SotW ADS.
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { AggregatedDiscoveryServiceService } from '../../api/gen/envoy/service/discovery/v3/ads';
import type { DeltaCall } from './delta-server';
import { adsServiceDefinition } from './service';
import { encodeSotwFrame, type SotwStreamCall } from './sotw-server';

export const fullAdsServiceDefinition = {
  streamAggregatedResources: {
    ...AggregatedDiscoveryServiceService.streamAggregatedResources,
    responseSerialize: encodeSotwFrame,
  },
  deltaAggregatedResources: adsServiceDefinition.deltaAggregatedResources,
} as const;

export function fullAdsImplementation(handlers: { delta: (call: DeltaCall) => void; sotw: (call: SotwStreamCall) => void }): UntypedServiceImplementation {
  return { streamAggregatedResources: handlers.sotw, deltaAggregatedResources: handlers.delta };
}
