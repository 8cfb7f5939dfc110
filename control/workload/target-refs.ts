// A targetRefs AuthorizationPolicy is a waypoint's to enforce. When a Service it targets has no
// usable waypoint, nobody would enforce it and it would silently allow everything. The control
// plane then publishes it to node proxies as a DENY-everything Authorization for the workloads
// that Service selects (fail closed), and marks its rule in Rule.l7_attributes with one entry per
// such Service — "targetRefs:Service/<namespace>/<name>" — so a node proxy can say why it denies
// (an older one still denies: a DENY rule is enforced on its L4 part, here an empty rule).
// Shared by the translation (control/workload) and the evaluator (node-proxy/policy); pure.

export const UNENFORCED_TARGET_REF_PREFIX = 'targetRefs:';

/** The Rule.l7_attributes entry naming a targeted Service that has no usable waypoint. */
export function unenforcedTargetRefAttribute(namespace: string, service: string): string {
  return `${UNENFORCED_TARGET_REF_PREFIX}Service/${namespace}/${service}`;
}

/** The targeted Services ("Service/<ns>/<name>") a rule's L7 attributes name as having no waypoint. */
export function unenforcedTargetRefs(l7Attributes: readonly string[]): string[] {
  return l7Attributes.filter((a) => a.startsWith(UNENFORCED_TARGET_REF_PREFIX)).map((a) => a.slice(UNENFORCED_TARGET_REF_PREFIX.length));
}
