// Pure: the node-local protocol between the nodemesh CNI plugin and the node proxy. One request per
// unix-socket connection: the plugin writes one JSON object and a newline, the node proxy answers
// with one JSON object and a newline and closes. Bounded both ways (MAX_MESSAGE_BYTES).
// Builtins only: the plugin executable loads this file and must start fast.

export const MAX_MESSAGE_BYTES = 64 * 1024;
/** Where the node proxy listens by default (a root-only directory; the plugin config can name another). */
export const DEFAULT_CNI_SOCKET = '/run/nodemesh/cni.sock';

export type PodEventKind = 'ADD' | 'DEL' | 'CHECK';

/** What the plugin tells the node proxy about a pod sandbox. */
export interface PodEvent {
  readonly kind: PodEventKind;
  readonly namespace: string;
  readonly name: string;
  /** metadata.uid (K8S_POD_UID); empty when the runtime does not pass it. */
  readonly uid: string;
  /** The sandbox id (CNI_CONTAINERID). */
  readonly containerId: string;
  /** The pod's netns path (CNI_NETNS); may be empty on DEL. */
  readonly netns: string;
  /** The pod's addresses from the earlier plugins' result (prevResult.ips), without prefix length. */
  readonly ips: readonly string[];
}

/** The node proxy's answer. */
export type PodEventReply =
  /** Done: `captured` says whether the pod is in the mesh (capture in place) or left alone. */
  | { readonly ok: true; readonly captured: boolean; readonly message: string }
  /** Failed: `retry` = the runtime should retry the ADD later (CNI error code 11). */
  | { readonly ok: false; readonly retry: boolean; readonly error: string };

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6 = /^[0-9a-fA-F:.]{2,45}$/;

function str(o: Record<string, unknown>, k: string): string {
  const v = o[k];
  if (typeof v !== 'string') throw new TypeError(`field '${k}' must be a string`);
  return v;
}

/** Validates a decoded request; throws a TypeError naming the field. */
export function validatePodEvent(v: unknown): PodEvent {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new TypeError('the request must be a JSON object');
  const o = v as Record<string, unknown>;
  const kind = str(o, 'kind');
  if (kind !== 'ADD' && kind !== 'DEL' && kind !== 'CHECK') throw new TypeError(`field 'kind' must be ADD, DEL or CHECK, got '${kind}'`);
  const namespace = str(o, 'namespace');
  if (!DNS_LABEL.test(namespace)) throw new TypeError(`field 'namespace' is not a Kubernetes namespace name: '${namespace.slice(0, 80)}'`);
  const name = str(o, 'name');
  if (!DNS_SUBDOMAIN.test(name)) throw new TypeError(`field 'name' is not a Kubernetes pod name: '${name.slice(0, 80)}'`);
  const uid = str(o, 'uid');
  if (uid !== '' && !UID.test(uid)) throw new TypeError(`field 'uid' is not a pod UID: '${uid.slice(0, 80)}'`);
  const containerId = str(o, 'containerId');
  if (!CONTAINER_ID.test(containerId)) throw new TypeError(`field 'containerId' is not a container id: '${containerId.slice(0, 80)}'`);
  const netns = str(o, 'netns');
  if (netns !== '' && (!netns.startsWith('/') || netns.includes('\0') || netns.split('/').includes('..') || netns.length > 4096)) {
    throw new TypeError(`field 'netns' must be an absolute path without '..': '${netns.slice(0, 80)}'`);
  }
  if (kind !== 'DEL' && netns === '') throw new TypeError(`field 'netns' is required for ${kind}`);
  const ipsRaw = o.ips ?? [];
  if (!Array.isArray(ipsRaw) || ipsRaw.length > 16) throw new TypeError("field 'ips' must be an array of at most 16 addresses");
  const ips = ipsRaw.map((ip, i) => {
    if (typeof ip !== 'string' || !(IPV4.test(ip) || (ip.includes(':') && IPV6.test(ip)))) throw new TypeError(`field 'ips[${i}]' is not an IP address`);
    return ip;
  });
  return { kind, namespace, name, uid, containerId, netns, ips };
}

/** Validates a decoded reply (the plugin's side). */
export function validateReply(v: unknown): PodEventReply {
  if (!v || typeof v !== 'object') throw new TypeError('the reply must be a JSON object');
  const o = v as Record<string, unknown>;
  if (o.ok === true && typeof o.captured === 'boolean') return { ok: true, captured: o.captured, message: typeof o.message === 'string' ? o.message : '' };
  if (o.ok === false && typeof o.error === 'string') return { ok: false, retry: o.retry === true, error: o.error };
  throw new TypeError('the reply is neither {ok:true,captured} nor {ok:false,error}');
}

/** Frames one message: JSON and a newline; refuses what the peer would refuse. */
export function encodeMessage(v: unknown): Buffer {
  const b = Buffer.from(JSON.stringify(v) + '\n', 'utf8');
  if (b.length > MAX_MESSAGE_BYTES) throw new RangeError(`message of ${b.length} bytes exceeds the ${MAX_MESSAGE_BYTES}-byte limit`);
  return b;
}

/**
 * Accumulates bytes until the first newline. Returns the decoded JSON once complete, undefined
 * while incomplete; throws once the limit is passed without a newline or the JSON is bad.
 */
export class LineReader {
  private chunks: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer): unknown | undefined {
    const nl = chunk.indexOf(0x0a);
    const part = nl < 0 ? chunk : chunk.subarray(0, nl);
    this.size += part.length;
    if (this.size > MAX_MESSAGE_BYTES) throw new RangeError(`message exceeds ${MAX_MESSAGE_BYTES} bytes`);
    this.chunks.push(part);
    if (nl < 0) return undefined;
    const text = Buffer.concat(this.chunks).toString('utf8');
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new SyntaxError('message is not valid JSON');
    }
  }
}
