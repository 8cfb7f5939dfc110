// v1 Service: a virtual IP (clusterIP) and ports in front of the Workloads its selector picks.
import { isIP } from 'node:net';
import { z } from 'zod';
import { labelMap, portName, portNumber, protocol } from './fields';
import type { Resource } from './meta';

export const servicePort = z.strictObject({
  name: portName.optional(),
  port: portNumber,
  /** A number, or the name of a port declared by the selected Workloads; defaults to `port`. */
  targetPort: z.union([portNumber, portName]).optional(),
  protocol: protocol.default('TCP'),
  /** e.g. `http`, `http2`, `grpc`, `kubernetes.io/h2c`, `tcp`: tells proxies which L7 protocol to expect. */
  appProtocol: z.string().min(1).max(253).optional(),
});
export type ServicePort = z.output<typeof servicePort>;

export const serviceSpec = z
  .strictObject({
    /** The virtual IP; allocated from the service range when omitted. `None` makes a headless Service. */
    clusterIP: z
      .string()
      .refine((s) => s === 'None' || isIP(s) !== 0, { message: 'must be an IPv4 or IPv6 address, or "None" for a headless Service' })
      .optional(),
    ports: z.array(servicePort).min(1, 'a Service needs at least one port'),
    selector: labelMap.optional(),
    type: z.enum(['ClusterIP'], { message: 'only ClusterIP Services are supported' }).optional(),
  })
  .superRefine((spec, ctx) => {
    const names = new Map<string, number>();
    const ports = new Map<string, number>();
    spec.ports.forEach((p, i) => {
      if (spec.ports.length > 1 && !p.name) {
        ctx.addIssue({ code: 'custom', path: ['ports', i, 'name'], message: 'required when a Service has more than one port' });
      }
      if (p.name !== undefined) {
        const prev = names.get(p.name);
        if (prev !== undefined)
          ctx.addIssue({ code: 'custom', path: ['ports', i, 'name'], message: `duplicate port name "${p.name}" (also spec.ports[${prev}])` });
        else names.set(p.name, i);
      }
      const key = `${p.port}/${p.protocol}`;
      const prevPort = ports.get(key);
      if (prevPort !== undefined) ctx.addIssue({ code: 'custom', path: ['ports', i, 'port'], message: `duplicate port ${key} (also spec.ports[${prevPort}])` });
      else ports.set(key, i);
    });
  });
export type ServiceSpec = z.output<typeof serviceSpec>;
export type Service = Resource<'Service', ServiceSpec>;

/** The workload port a Service port forwards to: a number, or a name to look up on the workload. */
export function targetPortOf(p: ServicePort): number | string {
  return p.targetPort ?? p.port;
}
