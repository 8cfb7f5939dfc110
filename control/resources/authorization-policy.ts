// security.nodemesh.io/v1alpha1 AuthorizationPolicy, shaped like Istio's security.istio.io/v1
// AuthorizationPolicy so existing policies can be reused by changing the apiVersion.
// L4 fields (principals, namespaces, ipBlocks, ports) are enforced by the node proxy; L7 fields
// (methods, paths, hosts, request headers) need a waypoint.
import { z } from 'zod';
import { cidrProblem, dnsSubdomain, dnsLabel, ipOrCidr, labelMap, portString } from './fields';
import type { Resource } from './meta';

/** Istio match strings: exact, `*`, `prefix*` or `*suffix`. */
const matchString = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => s === '*' || !s.slice(1, -1).includes('*'), { message: 'a "*" wildcard may appear only at the start or the end' });

const strings = z.array(matchString).min(1, 'must list at least one value when present');

export const source = z.strictObject({
  /** Peer identities without the scheme, e.g. `cluster.local/ns/default/sa/sleep`. */
  principals: strings.optional(),
  notPrincipals: strings.optional(),
  requestPrincipals: strings.optional(),
  notRequestPrincipals: strings.optional(),
  namespaces: strings.optional(),
  notNamespaces: strings.optional(),
  ipBlocks: z.array(ipOrCidr).min(1).optional(),
  notIpBlocks: z.array(ipOrCidr).min(1).optional(),
  remoteIpBlocks: z.array(ipOrCidr).min(1).optional(),
  notRemoteIpBlocks: z.array(ipOrCidr).min(1).optional(),
});
export type Source = z.output<typeof source>;

export const operation = z.strictObject({
  hosts: strings.optional(),
  notHosts: strings.optional(),
  ports: z.array(portString).min(1).optional(),
  notPorts: z.array(portString).min(1).optional(),
  methods: strings.optional(),
  notMethods: strings.optional(),
  paths: strings.optional(),
  notPaths: strings.optional(),
});
export type Operation = z.output<typeof operation>;

const WHEN_KEYS = [
  'source.ip',
  'remote.ip',
  'source.namespace',
  'source.principal',
  'destination.ip',
  'destination.port',
  'connection.sni',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
];
const WHEN_PREFIXES = ['request.headers[', 'request.auth.claims[', 'experimental.'];

export const condition = z
  .strictObject({
    key: z.string().refine((k) => WHEN_KEYS.includes(k) || WHEN_PREFIXES.some((p) => k.startsWith(p)), {
      message: `must be one of ${WHEN_KEYS.join(', ')} or start with ${WHEN_PREFIXES.join(', ')}`,
    }),
    values: strings.optional(),
    notValues: strings.optional(),
  })
  .refine((c) => c.values !== undefined || c.notValues !== undefined, { message: 'needs values or notValues' })
  .superRefine((c, ctx) => {
    // Address and port keys become L4 matches: their values must be what the key holds, or the
    // translation (and every node proxy receiving it) would have to refuse the policy later.
    const ipKey = c.key === 'source.ip' || c.key === 'remote.ip' || c.key === 'destination.ip';
    const portKey = c.key === 'destination.port';
    if (!ipKey && !portKey) return;
    for (const field of ['values', 'notValues'] as const) {
      (c[field] ?? []).forEach((v, i) => {
        if (ipKey && cidrProblem(v) !== undefined)
          ctx.addIssue({ code: 'custom', path: [field, i], message: `${c.key} values must be IP addresses or CIDRs such as 10.0.0.0/8` });
        if (portKey && !(/^\d{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65535))
          ctx.addIssue({ code: 'custom', path: [field, i], message: 'destination.port values must be port numbers from 1 to 65535, e.g. "8080"' });
      });
    }
  });
export type Condition = z.output<typeof condition>;

export const rule = z.strictObject({
  from: z.array(z.strictObject({ source })).optional(),
  to: z.array(z.strictObject({ operation })).optional(),
  when: z.array(condition).optional(),
});
export type Rule = z.output<typeof rule>;

export const policyTargetRef = z
  .strictObject({
    group: z.string().default(''),
    kind: z.enum(['Service', 'Gateway'], { message: 'must be Service or Gateway' }),
    name: dnsSubdomain,
    namespace: dnsLabel.optional(),
  })
  .superRefine((ref, ctx) => {
    const want = ref.kind === 'Service' ? '' : 'gateway.networking.k8s.io';
    if (ref.group !== want && !(ref.kind === 'Service' && ref.group === 'core')) {
      ctx.addIssue({ code: 'custom', path: ['group'], message: `must be "${want}" for kind ${ref.kind}` });
    }
  });
export type PolicyTargetRef = z.output<typeof policyTargetRef>;

export const authorizationPolicySpec = z
  .strictObject({
    /** Workloads in the policy's namespace with these labels; omitted = the whole namespace. */
    selector: z.strictObject({ matchLabels: labelMap }).optional(),
    /** Instead of a selector: the Service or waypoint Gateway the policy applies to (enforced at the waypoint). */
    targetRefs: z.array(policyTargetRef).min(1).optional(),
    action: z
      .enum(['ALLOW', 'DENY'], {
        error: (iss) =>
          iss.input === 'AUDIT' || iss.input === 'CUSTOM' ? `${String(iss.input)} is not supported; only ALLOW and DENY are` : 'must be ALLOW or DENY',
      })
      .default('ALLOW'),
    rules: z.array(rule).optional(),
  })
  .superRefine((spec, ctx) => {
    if (spec.selector && spec.targetRefs) {
      ctx.addIssue({ code: 'custom', path: ['targetRefs'], message: 'selector and targetRefs are mutually exclusive; use one' });
    }
  });
export type AuthorizationPolicySpec = z.output<typeof authorizationPolicySpec>;
export type AuthorizationPolicy = Resource<'AuthorizationPolicy', AuthorizationPolicySpec>;
export type AuthorizationAction = 'ALLOW' | 'DENY';
