// Pure (given the random source): the trace headers a new tunnelled connection carries, as
// ztunnel sends them — a fresh W3C `traceparent` per connection and `baggage` naming the source.
import { randomBytes } from 'node:crypto';
import type { Workload } from '../../api/gen/nodemesh/workload/v1/workload';

const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let taken = 0;

/**
 * n cryptographically random bytes cut from a 4 KiB block drawn at once: randomBytes() twice per
 * connection showed in the node proxy's profile. The bytes are handed out once each.
 */
export function pooledRandom(n: number): Buffer {
  if (n > POOL_BYTES) return randomBytes(n);
  if (taken + n > pool.length) {
    pool = randomBytes(POOL_BYTES);
    taken = 0;
  }
  const b = pool.subarray(taken, taken + n);
  taken += n;
  return b;
}

/** `00-<trace id>-<span id>-01`: a new sampled trace for one proxied connection. */
export function newTraceparent(random: (n: number) => Buffer = pooledRandom): string {
  let trace = random(16);
  // An all-zero id is invalid in W3C trace context.
  if (trace.every((b) => b === 0)) trace = Buffer.from('00000000000000000000000000000001', 'hex');
  let span = random(8);
  if (span.every((b) => b === 0)) span = Buffer.from('0000000000000001', 'hex');
  return `00-${trace.toString('hex')}-${span.toString('hex')}-01`;
}

const safe = (v: string): string => encodeURIComponent(v);

const baggageOf = new WeakMap<object, string>();

/** sourceBaggage, computed once per workload object (the state replaces the object when it changes). */
export function cachedSourceBaggage(w: Workload): string {
  let b = baggageOf.get(w);
  if (b === undefined) baggageOf.set(w, (b = sourceBaggage(w)));
  return b;
}

/** W3C baggage describing the source workload (OpenTelemetry semantic keys). */
export function sourceBaggage(
  w: Pick<Workload, 'namespace' | 'name' | 'canonicalName' | 'canonicalRevision' | 'workloadType'>,
  cluster = 'Kubernetes',
): string {
  const kind = (w.workloadType || 'Workload').toLowerCase();
  const items: Array<[string, string]> = [
    ['k8s.cluster.name', cluster],
    ['k8s.namespace.name', w.namespace],
    [`k8s.${kind}.name`, w.name],
    ['service.name', w.canonicalName || w.name],
    ['service.version', w.canonicalRevision || 'latest'],
  ];
  return items.map(([k, v]) => `${k}=${safe(v)}`).join(',');
}
