// gateway.networking.k8s.io/v1 Gateway with gatewayClassName `nodemesh-waypoint`: a waypoint, the
// L7 proxy for a Service, a namespace or workloads. Label it `nodemesh.io/waypoint-for`.
import { z } from 'zod';
import { dnsLabel, ipAddress, labelSelector, portNumber, annotationMap, labelMap } from './fields';
import type { Resource } from './meta';

export const WAYPOINT_GATEWAY_CLASS = 'nodemesh-waypoint';
/** Istio's waypoint class, accepted as the same thing (docs/istio.md). */
export const ISTIO_WAYPOINT_GATEWAY_CLASS = 'istio-waypoint';

/** Whether a Gateway of this class is a waypoint. */
export function isWaypointClass(gatewayClassName: string | undefined): boolean {
  return gatewayClassName === WAYPOINT_GATEWAY_CLASS || gatewayClassName === ISTIO_WAYPOINT_GATEWAY_CLASS;
}

export const listener = z.strictObject({
  name: dnsLabel,
  hostname: z.string().min(1).max(253).optional(),
  port: portNumber,
  protocol: z.enum(['HBONE', 'HTTP', 'HTTPS', 'TCP', 'TLS'], { message: 'must be one of HBONE, HTTP, HTTPS, TCP, TLS' }),
  allowedRoutes: z
    .strictObject({
      namespaces: z
        .strictObject({
          from: z.enum(['All', 'Same', 'Selector'], { message: 'must be All, Same or Selector' }).default('Same'),
          selector: labelSelector.optional(),
        })
        .optional(),
      kinds: z.array(z.strictObject({ group: z.string().optional(), kind: z.string().min(1) })).optional(),
    })
    .optional(),
});
export type Listener = z.output<typeof listener>;

export const gatewaySpec = z
  .strictObject({
    gatewayClassName: z.string().refine(isWaypointClass, {
      message: `must be "${WAYPOINT_GATEWAY_CLASS}" (or Istio's "${ISTIO_WAYPOINT_GATEWAY_CLASS}"): this control plane serves waypoints only`,
    }),
    listeners: z.array(listener).min(1, 'a Gateway needs at least one listener').max(64),
    addresses: z.array(z.strictObject({ type: z.enum(['IPAddress', 'Hostname']).default('IPAddress'), value: z.string().min(1) })).optional(),
    infrastructure: z.strictObject({ labels: labelMap.optional(), annotations: annotationMap.optional() }).optional(),
  })
  .superRefine((spec, ctx) => {
    const names = new Map<string, number>();
    spec.listeners.forEach((l, i) => {
      const prev = names.get(l.name);
      if (prev !== undefined)
        ctx.addIssue({ code: 'custom', path: ['listeners', i, 'name'], message: `duplicate listener name "${l.name}" (also spec.listeners[${prev}])` });
      else names.set(l.name, i);
    });
    spec.addresses?.forEach((a, i) => {
      if (a.type === 'IPAddress' && !ipAddress.safeParse(a.value).success) {
        ctx.addIssue({ code: 'custom', path: ['addresses', i, 'value'], message: 'must be an IPv4 or IPv6 address for type IPAddress' });
      }
    });
  });
export type GatewaySpec = z.output<typeof gatewaySpec>;
export type Gateway = Resource<'Gateway', GatewaySpec>;
