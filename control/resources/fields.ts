// Field schemas shared by every kind: Kubernetes names and labels, IP addresses, CIDRs, ports and
// Gateway API durations. Each carries a message that says what a valid value looks like.
import { isIP } from 'node:net';
import { cidrProblem as parseProblem } from '../../common/ip';
import { z } from 'zod';

const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME_RE = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE_RE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const PORT_NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export const dnsLabel = z
  .string()
  .max(63, 'must be at most 63 characters')
  .regex(DNS_LABEL_RE, 'must be a DNS-1123 label: lower-case letters, digits and "-", starting and ending with a letter or digit');

export const dnsSubdomain = z
  .string()
  .max(253, 'must be at most 253 characters')
  .regex(DNS_SUBDOMAIN_RE, 'must be a DNS-1123 subdomain: lower-case letters, digits, "-" and ".", starting and ending with a letter or digit');

/** Why `key` is not a valid Kubernetes label (or annotation) key, or undefined. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN_RE.test(prefix))) {
    return `key prefix "${prefix}" must be a DNS-1123 subdomain`;
  }
  if (name.length === 0 || name.length > 63 || !LABEL_NAME_RE.test(name)) {
    return 'key name must be 1-63 characters of letters, digits, "-", "_" and ".", starting and ending with a letter or digit';
  }
  return undefined;
}

export const labelValue = z
  .string()
  .max(63, 'label values must be at most 63 characters')
  .regex(LABEL_VALUE_RE, 'label values must be empty or letters, digits, "-", "_" and ".", starting and ending with a letter or digit');

export const labelMap = z.record(z.string(), labelValue).superRefine((labels, ctx) => {
  for (const key of Object.keys(labels)) {
    const problem = labelKeyProblem(key);
    if (problem) ctx.addIssue({ code: 'custom', path: [key], message: problem });
  }
});

export const annotationMap = z.record(z.string(), z.string()).superRefine((annotations, ctx) => {
  for (const key of Object.keys(annotations)) {
    const problem = labelKeyProblem(key);
    if (problem) ctx.addIssue({ code: 'custom', path: [key], message: problem });
  }
});

export const ipAddress = z.string().refine((s) => isIP(s) !== 0, { message: 'must be an IPv4 or IPv6 address' });

/** Why `s` is not an IP or CIDR (`10.0.0.0/8`, `fd00::/8`, or a bare address), or undefined. */
export function cidrProblem(s: string, allowBareAddress = true): string | undefined {
  return parseProblem(s, allowBareAddress) === undefined ? undefined : 'must be a CIDR such as 10.0.0.0/8 or fd00::/8';
}

export const ipOrCidr = z.string().superRefine((s, ctx) => {
  const problem = cidrProblem(s);
  if (problem) ctx.addIssue({ code: 'custom', message: `must be an IP address or a CIDR such as 10.0.0.0/8` });
});

export const cidr = z.string().superRefine((s, ctx) => {
  const problem = cidrProblem(s, false);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const portNumber = z
  .number({ message: 'must be a port number (an integer from 1 to 65535)' })
  .int('must be a port number (an integer from 1 to 65535)')
  .min(1, 'must be a port number (an integer from 1 to 65535)')
  .max(65535, 'must be a port number (an integer from 1 to 65535)');

/** A port given as a string, as Istio's AuthorizationPolicy and PeerAuthentication write them. */
export const portString = z.string().refine((s) => /^\d{1,5}$/.test(s) && Number(s) >= 1 && Number(s) <= 65535, {
  message: 'must be a port number from 1 to 65535 written as a string, e.g. "8080"',
});

/** IANA service name, as used by named ports: at most 15 characters, at least one letter. */
export const portName = z
  .string()
  .max(15, 'port names must be at most 15 characters')
  .regex(PORT_NAME_RE, 'port names must be lower-case letters, digits and "-", starting and ending with a letter or digit')
  .refine((s) => /[a-z]/.test(s) && !s.includes('--'), { message: 'port names must contain a letter and no "--"' });

export const protocol = z.enum(['TCP', 'UDP', 'SCTP'], { message: 'must be one of TCP, UDP, SCTP' });

/** Gateway API duration: up to four `<number><unit>` parts, units h, m, s, ms (e.g. `1h30m`, `500ms`). */
export const duration = z.string().regex(/^([0-9]{1,5}(h|m|s|ms)){1,4}$/, 'must be a Gateway API duration such as "10s", "500ms" or "1h30m"');

/** Parses a Gateway API duration into milliseconds (input already validated). */
export function durationMs(d: string): number {
  let total = 0;
  for (const m of d.matchAll(/([0-9]+)(ms|h|m|s)/g)) {
    const n = Number(m[1]);
    const unit = m[2];
    total += unit === 'h' ? n * 3_600_000 : unit === 'm' ? n * 60_000 : unit === 's' ? n * 1000 : n;
  }
  return total;
}

/** Kubernetes label selector (`matchLabels` and `matchExpressions`). */
export const labelSelector = z.strictObject({
  matchLabels: labelMap.optional(),
  matchExpressions: z
    .array(
      z
        .strictObject({
          key: z.string().min(1, 'must not be empty'),
          operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist'], { message: 'must be one of In, NotIn, Exists, DoesNotExist' }),
          values: z.array(labelValue).optional(),
        })
        .superRefine((e, ctx) => {
          const needsValues = e.operator === 'In' || e.operator === 'NotIn';
          if (needsValues && !e.values?.length) {
            ctx.addIssue({ code: 'custom', path: ['values'], message: `operator ${e.operator} needs at least one value` });
          }
          if (!needsValues && e.values?.length) {
            ctx.addIssue({ code: 'custom', path: ['values'], message: `operator ${e.operator} takes no values` });
          }
        }),
    )
    .optional(),
});
export type LabelSelector = z.output<typeof labelSelector>;
