// What each xDS client was last sent, acknowledged and rejected: the data behind
// `nodemesh proxy-config xds` (served as GET /debug/xds on the config API).
import type { DeltaClientView } from '../xds/delta-server';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, PEER_AUTHENTICATION_TYPE_URL, WORKLOAD_API_TYPE_URLS } from '../workload/publisher';
import type { SotwClientView } from '../xds/sotw-server';
import { codecFor } from './any';
import { TYPE_SHORT_NAMES } from './names';
import { viewOfClient } from './publisher';
import type { DeltaTypeView } from '../xds/delta-state';

/** The view label of a node proxy's stream (workload API types only). */
export const WORKLOAD_API_VIEW = 'workload-api';

/** Short names of every type: Envoy's (lds, rds, cds, eds) and the workload API's. */
const SHORT_NAMES: Readonly<Record<string, string>> = {
  ...TYPE_SHORT_NAMES,
  [ADDRESS_TYPE_URL]: 'wds',
  [AUTHORIZATION_TYPE_URL]: 'authz',
  [PEER_AUTHENTICATION_TYPE_URL]: 'peerauthn',
};

export interface XdsTypeDump {
  readonly typeUrl: string;
  readonly wildcard: boolean;
  readonly subscribed: readonly string[];
  readonly sent?: { readonly version: string; readonly nonce: string; readonly resources: readonly string[] };
  readonly acked?: { readonly version: string; readonly resources: readonly unknown[] };
  readonly rejected?: { readonly version: string; readonly code: number; readonly message: string };
}

export interface XdsClientDump {
  readonly api: 'sotw' | 'delta';
  readonly stream: number;
  readonly nodeId: string;
  readonly peer: string;
  /** Which per-client view it gets (waypoint:<ns>/<name> or proxyless). */
  readonly view: string;
  readonly types: Record<string, XdsTypeDump | DeltaClientView['types'][string]>;
}

export interface DumpOptions {
  /** Only clients whose node id contains this. */
  readonly client?: string;
  /** Include the acked resources as proto3 JSON instead of their names. */
  readonly resources?: boolean;
}

export function dumpXdsClients(sotw: readonly SotwClientView[], delta: readonly DeltaClientView[], opts: DumpOptions = {}): XdsClientDump[] {
  const out: XdsClientDump[] = [];
  for (const c of sotw) {
    if (opts.client && !c.nodeId.includes(opts.client)) continue;
    const types: Record<string, XdsTypeDump> = {};
    for (const [typeUrl, t] of Object.entries(c.types)) {
      types[SHORT_NAMES[typeUrl] ?? typeUrl] = {
        typeUrl,
        wildcard: t.wildcard,
        subscribed: t.names,
        ...(t.sent ? { sent: { version: t.sent.version, nonce: t.sent.nonce, resources: t.sent.resources.map((r) => r.name) } } : {}),
        ...(t.acked
          ? {
              acked: {
                version: t.acked.version,
                resources: t.acked.resources.map((r) => (opts.resources ? codecFor(r.typeUrl).toJSON(codecFor(r.typeUrl).decode(r.value)) : r.name)),
              },
            }
          : {}),
        ...(t.rejected ? { rejected: t.rejected } : {}),
      };
    }
    out.push({ api: 'sotw', stream: c.id, nodeId: c.nodeId, peer: c.peer, view: viewOfClient({ nodeId: c.nodeId, metadata: {} }), types });
  }
  for (const c of delta) {
    if (opts.client && !c.nodeId.includes(opts.client)) continue;
    const types: XdsClientDump['types'] = {};
    for (const [typeUrl, t] of Object.entries(c.types)) types[SHORT_NAMES[typeUrl] ?? typeUrl] = t;
    // A stream of workload-API types only is a node proxy's: it gets the workload API, not an Envoy view.
    const typeUrls = Object.keys(c.types);
    const workloadApi = typeUrls.length > 0 && typeUrls.every((t) => WORKLOAD_API_TYPE_URLS.includes(t));
    const view = workloadApi ? WORKLOAD_API_VIEW : viewOfClient({ nodeId: c.nodeId, metadata: {} });
    out.push({ api: 'delta', stream: c.id, nodeId: c.nodeId, peer: c.peer, view, types });
  }
  return out;
}

/** One type's ACK state as proxy-status and the /ui page say it. */
export function syncState(t: XdsTypeDump | DeltaTypeView): string {
  if (!('typeUrl' in t)) return t.nacked ? 'NACKED' : t.unacked ? 'STALE' : 'SYNCED';
  if (t.rejected && (!t.acked || t.rejected.version !== t.acked.version)) return 'NACKED';
  if (!t.sent) return 'NOT SENT';
  return t.acked?.version === t.sent.version ? 'SYNCED' : 'STALE';
}
