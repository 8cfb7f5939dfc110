// security.nodemesh.io/v1alpha1 PeerAuthentication, shaped like Istio's: whether plaintext from
// outside the mesh is accepted (PERMISSIVE) or refused (STRICT), for a namespace, a set of
// workloads, or single ports of them.
import { z } from 'zod';
import { labelMap } from './fields';
import type { Resource } from './meta';

export const MTLS_MODES = ['UNSET', 'PERMISSIVE', 'STRICT'] as const;
export type MtlsMode = (typeof MTLS_MODES)[number];

const mtls = z.strictObject({
  mode: z
    .enum(MTLS_MODES, {
      error: (iss) =>
        iss.input === 'DISABLE' ? 'DISABLE is not supported by the ambient data plane; use PERMISSIVE' : 'must be one of UNSET, PERMISSIVE, STRICT',
    })
    .default('UNSET'),
});

export const peerAuthenticationSpec = z
  .strictObject({
    selector: z.strictObject({ matchLabels: labelMap }).optional(),
    mtls: mtls.optional(),
    /** Keys are workload ports written as strings, e.g. "8080". */
    portLevelMtls: z.record(z.string().regex(/^\d{1,5}$/, 'keys must be port numbers, e.g. "8080"'), mtls).optional(),
  })
  .superRefine((spec, ctx) => {
    if (spec.portLevelMtls && !spec.selector) {
      ctx.addIssue({ code: 'custom', path: ['portLevelMtls'], message: 'needs a selector: port-level settings apply to selected workloads only' });
    }
    for (const port of Object.keys(spec.portLevelMtls ?? {})) {
      const n = Number(port);
      if (n < 1 || n > 65535) ctx.addIssue({ code: 'custom', path: ['portLevelMtls', port], message: 'must be a port from 1 to 65535' });
    }
  });
export type PeerAuthenticationSpec = z.output<typeof peerAuthenticationSpec>;
export type PeerAuthentication = Resource<'PeerAuthentication', PeerAuthenticationSpec>;
