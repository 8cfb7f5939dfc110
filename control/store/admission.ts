// Checks that need more than one resource, run on every write against the state the write would
// produce (so the order of documents in one apply does not matter). Errors refuse the write;
// warnings are returned to the user with the result. Also allocates Service clusterIPs.
import { type Cidr, ipText, parseCidr } from '../../common/ip';
import type { AnyResource } from '../resources/kinds';
import { meshLabel, USE_WAYPOINT_LABEL, USE_WAYPOINT_NAMESPACE_LABEL } from '../resources/labels';
import { describeKey, keyOf } from '../resources/meta';
import { matchesLabels } from '../resources/selectors';
import { ValidationError, type ValidationIssue } from '../resources/validation';
import type { Snapshot } from './store';

export interface AdmissionResult {
  readonly errors: readonly ValidationError[];
  readonly warnings: readonly string[];
}

/** Cross-resource checks for `changed` (already stored in `post`, the would-be state). */
export function checkReferences(post: Snapshot, changed: readonly AnyResource[]): AdmissionResult {
  const errors: ValidationError[] = [];
  const warnings: string[] = [];
  // Built once per write (not per resource) so a batch of n Workloads costs O(n), not O(n²).
  let owners: { addresses: Map<string, AnyResource[]>; clusterIPs: Map<string, AnyResource[]> } | undefined;
  const index = () => {
    if (!owners) {
      owners = { addresses: new Map(), clusterIPs: new Map() };
      const add = (m: Map<string, AnyResource[]>, k: string, r: AnyResource) => m.set(k, [...(m.get(k) ?? []), r]);
      for (const w of post.list('Workload')) for (const a of w.spec.addresses) add(owners.addresses, a, w);
      for (const s of post.list('Service')) if (s.spec.clusterIP && s.spec.clusterIP !== 'None') add(owners.clusterIPs, s.spec.clusterIP, s);
    }
    return owners;
  };
  const otherThan = (r: AnyResource, list: AnyResource[] | undefined) =>
    list?.find((o) => o.metadata.name !== r.metadata.name || o.metadata.namespace !== r.metadata.namespace);
  for (const r of changed) {
    const issues: ValidationIssue[] = [];
    const who = describeKey(keyOf(r));
    const ns = r.metadata.namespace;
    if (ns !== undefined && !post.get('Namespace', ns)) {
      issues.push({ path: 'metadata.namespace', message: `namespace "${ns}" does not exist; create it first (or apply it in the same batch)` });
    }
    const waypoint = meshLabel(r.metadata.labels, USE_WAYPOINT_LABEL);
    if (waypoint !== undefined && waypoint !== 'none') {
      const wns = meshLabel(r.metadata.labels, USE_WAYPOINT_NAMESPACE_LABEL) ?? ns ?? r.metadata.name;
      if (!post.get('Gateway', waypoint, wns))
        warnings.push(`${who}: label ${USE_WAYPOINT_LABEL} names Gateway ${wns}/${waypoint}, which does not exist (yet)`);
    }
    switch (r.kind) {
      case 'Service': {
        const ip = r.spec.clusterIP;
        if (ip && ip !== 'None') {
          const other = otherThan(r, index().clusterIPs.get(ip));
          if (other) issues.push({ path: 'spec.clusterIP', message: `${ip} is already the clusterIP of ${describeKey(keyOf(other))}` });
        }
        const selected = r.spec.selector ? post.list('Workload', { namespace: ns }).filter((w) => matchesLabels(w.metadata.labels, r.spec.selector)) : [];
        r.spec.ports.forEach((p, i) => {
          if (typeof p.targetPort !== 'string' || selected.length === 0) return;
          const name = p.targetPort;
          if (!selected.some((w) => w.spec.ports?.some((wp) => wp.name === name))) {
            issues.push({
              path: `spec.ports[${i}].targetPort`,
              message: `no selected Workload (${selected.map((w) => w.metadata.name).join(', ')}) declares a port named "${name}" in spec.ports`,
            });
          }
        });
        break;
      }
      case 'Workload': {
        for (const [i, addr] of r.spec.addresses.entries()) {
          const other = otherThan(r, index().addresses.get(addr));
          if (other) issues.push({ path: `spec.addresses[${i}]`, message: `${addr} is already an address of ${describeKey(keyOf(other))}` });
        }
        break;
      }
      case 'HTTPRoute': {
        r.spec.parentRefs.forEach((ref, i) => {
          const refNs = ref.namespace ?? ns;
          const svc = post.get('Service', ref.name, refNs);
          if (!svc) {
            issues.push({
              path: `spec.parentRefs[${i}].name`,
              message: `Service ${refNs}/${ref.name} does not exist; a mesh HTTPRoute attaches to an existing Service`,
            });
          } else if (ref.port !== undefined && !svc.spec.ports.some((p) => p.port === ref.port)) {
            issues.push({
              path: `spec.parentRefs[${i}].port`,
              message: `Service ${refNs}/${ref.name} has no port ${ref.port} (it has ${svc.spec.ports.map((p) => p.port).join(', ')})`,
            });
          }
        });
        r.spec.rules.forEach((rule, i) =>
          rule.backendRefs?.forEach((b, j) => {
            if (b.port === undefined) issues.push({ path: `spec.rules[${i}].backendRefs[${j}].port`, message: 'required for a Service backend' });
            const bNs = b.namespace ?? ns;
            if (!post.get('Service', b.name, bNs))
              warnings.push(`${who}: spec.rules[${i}].backendRefs[${j}] names Service ${bNs}/${b.name}, which does not exist (requests to it will fail)`);
          }),
        );
        break;
      }
      case 'AuthorizationPolicy': {
        r.spec.targetRefs?.forEach((t, i) => {
          const tNs = t.namespace ?? ns;
          const found = t.kind === 'Service' ? post.get('Service', t.name, tNs) : post.get('Gateway', t.name, tNs);
          if (!found)
            warnings.push(`${who}: spec.targetRefs[${i}] names ${t.kind} ${tNs}/${t.name}, which does not exist (the policy applies to nothing until it does)`);
        });
        break;
      }
      default:
        break;
    }
    if (issues.length) errors.push(new ValidationError(who, issues));
  }
  return { errors, warnings };
}

function intToIpv4(n: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return ipText(b);
}

/** The lowest free IPv4 address in `cidr` (from .10 up, as Kubernetes leaves the first few). */
export function allocateClusterIP(used: ReadonlySet<string>, cidr: string): string {
  let range: Cidr | undefined;
  try {
    range = parseCidr(cidr, false);
  } catch {
    range = undefined;
  }
  const bits = range?.length ?? 0;
  if (range?.address.length !== 4 || !(bits >= 8 && bits <= 30)) throw new Error(`service CIDR ${cidr} must be an IPv4 range between /8 and /30`);
  const size = 2 ** (32 - bits);
  const base = range.address.readUInt32BE(0);
  const start = base - (base % size);
  for (let i = Math.min(10, size - 2); i < size - 1; i++) {
    const ip = intToIpv4(start + i);
    if (!used.has(ip)) return ip;
  }
  throw new Error(`service CIDR ${cidr} is full: delete a Service or give a clusterIP explicitly`);
}
