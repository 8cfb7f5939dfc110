// Pure (given the random source): the trace headers a new tunnelled connection carries, as
// ztunnel sends them — a fresh W3C `traceparent` per connection and `baggage` naming the source.
import { randomBytes } from 'node:crypto';
import type { Workload } from '../../api/gen/nodemesh/workload/v1/workload';

const HEX_POOL_BYTES = 4096;
let hexPool = '';
let hexTaken = 0;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/**
 * `00-<trace id>-<span id>-01` from a pool of random hex text (4 KiB of random bytes drawn at once,
 * each character handed out once): no Buffer and no hex encoding per connection.
 */
export function pooledTraceparent(): string {
  if (hexTaken + 48 > hexPool.length) {
    hexPool = randomBytes(HEX_POOL_BYTES).toString('hex');
    hexTaken = 0;
  }
  let trace = hexPool.slice(hexTaken, hexTaken + 32);
  let span = hexPool.slice(hexTaken + 32, hexTaken + 48);
  hexTaken += 48;
  // An all-zero id is invalid in W3C trace context.
  if (trace === ZERO_TRACE) trace = '00000000000000000000000000000001';
  if (span === ZERO_SPAN) span = '0000000000000001';
  return `00-${trace}-${span}-01`;
}

/** `00-<trace id>-<span id>-01`: a new sampled trace for one proxied connection. */
export function newTraceparent(random?: (n: number) => Buffer): string {
  if (!random) return pooledTraceparent(); // `random`: a source of bytes for tests
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
