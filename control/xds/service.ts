// The AggregatedDiscoveryService as grpc-js serves it. The generated definition is reused except
// for the delta response serializer: a DeltaFrame is written as a small encoded header (type URL,
// nonce, removals) followed by each resource's pre-encoded field record, so a resource is encoded
// once however many streams receive it.
import { status, type ServerDuplexStream, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { AggregatedDiscoveryServiceService } from '../../api/gen/envoy/service/discovery/v3/ads';
import { DeltaDiscoveryResponse, type DiscoveryRequest, type DiscoveryResponse } from '../../api/gen/envoy/service/discovery/v3/discovery';
import type { DeltaCall } from './delta-server';
import type { DeltaFrame } from './delta-state';
import type { NodeBinding } from './node-binding';

export function encodeDeltaFrame(frame: DeltaFrame): Buffer {
  const header = DeltaDiscoveryResponse.encode(
    DeltaDiscoveryResponse.fromPartial({
      typeUrl: frame.typeUrl,
      nonce: frame.nonce,
      systemVersionInfo: frame.systemVersionInfo,
      removedResources: [...frame.removed],
    }),
  ).finish();
  const parts: Uint8Array[] = [header];
  for (const resource of frame.resources) parts.push(resource.deltaRecord());
  return Buffer.concat(parts);
}

export const adsServiceDefinition = {
  streamAggregatedResources: AggregatedDiscoveryServiceService.streamAggregatedResources,
  deltaAggregatedResources: {
    ...AggregatedDiscoveryServiceService.deltaAggregatedResources,
    responseSerialize: encodeDeltaFrame,
  },
} as const;

export type SotwCall = ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>;

/** Serves a SotW stream; `binding` when the server authenticated the caller. */
export type SotwHandler = (call: SotwCall, binding?: NodeBinding) => void;

export interface AdsHandlers {
  readonly delta: (call: DeltaCall) => void;
  /** State-of-the-world ADS; until it is provided, such streams end with UNIMPLEMENTED. */
  readonly sotw?: SotwHandler;
}

export function adsImplementation(handlers: AdsHandlers): UntypedServiceImplementation {
  return {
    deltaAggregatedResources: handlers.delta,
    streamAggregatedResources:
      handlers.sotw ??
      ((call: SotwCall) => {
        call.emit('error', {
          code: status.UNIMPLEMENTED,
          details: 'state-of-the-world ADS is not served yet; use DeltaAggregatedResources',
        });
      }),
  };
}
