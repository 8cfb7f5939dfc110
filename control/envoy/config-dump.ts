// `nodemesh proxy-config listeners|routes|clusters|endpoints|secrets`: tables of a waypoint's
// config dump (its admin /config_dump: the xDS resources it accepted, in proto3 JSON, and its
// certificate without the private key), as `istioctl proxy-config` shows an Envoy's. Pure.
import { X509Certificate } from 'node:crypto';
import { parseEndpointWorkload } from '../../common/contracts/telemetry';
import { splitPem } from '../../common/identity/pem';

type Json = Record<string, unknown>;

/** What a waypoint's /config_dump holds (waypoint/waypoint.ts). */
export interface WaypointConfigDump {
  readonly node?: { readonly name?: string; readonly namespace?: string };
  /** short type (lds, rds, cds, eds) -> resources. */
  readonly resources?: Readonly<Record<string, ReadonlyArray<{ name: string; version: string; resource: unknown }>>>;
  readonly secrets?: ReadonlyArray<{ name: string; spiffeId?: string; trustDomain?: string; notAfter?: string; certChain?: string }>;
}

export interface DumpTable {
  readonly header: readonly string[];
  readonly rows: string[][];
}

const obj = (v: unknown): Json => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (v === undefined || v === null || v === '' ? '-' : String(v));
const entries = (d: WaypointConfigDump, type: string) => [...(d.resources?.[type] ?? [])].sort((a, b) => a.name.localeCompare(b.name));

function socketAddress(address: unknown): string {
  const a = obj(address);
  const s = obj(a.socketAddress);
  if (s.address !== undefined) return String(s.address).includes(':') ? `[${str(s.address)}]:${str(s.portValue)}` : `${str(s.address)}:${str(s.portValue)}`;
  const internal = obj(a.envoyInternalAddress);
  if (internal.serverListenerName !== undefined) return `internal:${str(internal.serverListenerName)}`;
  return '-';
}

/** What a listener's filter chains do: HTTP with its route config, or TCP to a cluster. */
function listenerDestination(l: Json): { kind: string; to: string } {
  const kinds = new Set<string>();
  const to = new Set<string>();
  for (const chain of arr(l.filterChains)) {
    for (const f of arr(obj(chain).filters)) {
      const c = obj(obj(f).typedConfig);
      const type = String(c['@type'] ?? '');
      if (type.endsWith('.HttpConnectionManager')) {
        kinds.add('HTTP');
        const rds = obj(c.rds).routeConfigName;
        to.add(rds !== undefined ? `Route: ${String(rds)}` : `Inline Route: ${str(obj(c.routeConfig).name)}`);
      } else if (type.endsWith('.TcpProxy')) {
        kinds.add('TCP');
        to.add(`Cluster: ${str(c.cluster ?? obj(arr(obj(c.weightedClusters).clusters)[0]).name)}`);
      } else if (type) kinds.add(type.slice(type.lastIndexOf('.') + 1));
    }
  }
  return { kind: [...kinds].join(',') || '-', to: [...to].join(', ') || '-' };
}

function listeners(d: WaypointConfigDump): DumpTable {
  return {
    header: ['NAME', 'ADDRESS', 'TYPE', 'DESTINATION', 'VERSION'],
    rows: entries(d, 'lds').map((e) => {
      const l = obj(e.resource);
      const dest = listenerDestination(l);
      return [e.name, l.internalListener !== undefined ? 'internal' : socketAddress(l.address), dest.kind, dest.to, e.version];
    }),
  };
}

function routeMatch(m: Json): string {
  const parts: string[] = [];
  if (m.prefix !== undefined) parts.push(`${String(m.prefix)}*`);
  if (m.path !== undefined) parts.push(String(m.path));
  if (m.safeRegex !== undefined) parts.push(`regex ${str(obj(m.safeRegex).regex)}`);
  if (m.connectMatcher !== undefined) parts.push('CONNECT');
  for (const h of arr(m.headers)) parts.push(`header ${str(obj(h).name)}`);
  return parts.join(' ') || '/*';
}

function routeTarget(r: Json): string {
  const a = obj(r.route);
  if (a.cluster !== undefined) return String(a.cluster);
  const w = arr(obj(a.weightedClusters).clusters);
  if (w.length) return w.map((c) => `${str(obj(c).name)}:${str(obj(c).weight)}`).join(',');
  if (r.directResponse !== undefined) return `direct ${str(obj(r.directResponse).status)}`;
  if (r.redirect !== undefined) return 'redirect';
  return '-';
}

function routes(d: WaypointConfigDump): DumpTable {
  const rows: string[][] = [];
  for (const e of entries(d, 'rds')) {
    for (const vh of arr(obj(e.resource).virtualHosts)) {
      const v = obj(vh);
      for (const r of arr(v.routes)) {
        const route = obj(r);
        const domains = arr(v.domains).map(String);
        const shown = domains.length > 1 ? `${domains[0]} +${domains.length - 1} more` : (domains[0] ?? '-');
        rows.push([e.name, str(v.name), shown, routeMatch(obj(route.match)), routeTarget(route)]);
      }
    }
  }
  return { header: ['NAME', 'VIRTUAL HOST', 'DOMAINS', 'MATCH', 'CLUSTER'], rows };
}

function clusters(d: WaypointConfigDump): DumpTable {
  return {
    header: ['NAME', 'TYPE', 'LB', 'EDS SERVICE', 'VERSION'],
    rows: entries(d, 'cds').map((e) => {
      const c = obj(e.resource);
      const eds = obj(c.edsClusterConfig).serviceName;
      return [e.name, str(c.type ?? 'STATIC'), str(c.lbPolicy ?? 'ROUND_ROBIN'), eds === undefined ? (c.type === 'EDS' ? e.name : '-') : str(eds), e.version];
    }),
  };
}

function endpoints(d: WaypointConfigDump): DumpTable {
  const rows: string[][] = [];
  for (const e of entries(d, 'eds')) {
    for (const loc of arr(obj(e.resource).endpoints)) {
      for (const lbe of arr(obj(loc).lbEndpoints)) {
        const ep = obj(lbe);
        const meta = obj(obj(ep.metadata).filterMetadata);
        const w = parseEndpointWorkload(obj(meta.istio).workload);
        const tunnel = obj(meta['envoy.transport_socket_match']).tunnel === 'http' ? `HBONE ${str(obj(meta.nodemesh).hbone)}` : 'plaintext';
        rows.push([
          socketAddress(obj(ep.endpoint).address),
          str(ep.healthStatus ?? 'HEALTHY'),
          e.name,
          w ? `${w.namespace}/${w.name}` : '-',
          tunnel,
          str(obj(meta.nodemesh).identity),
        ]);
      }
    }
  }
  return { header: ['ENDPOINT', 'STATUS', 'CLUSTER', 'WORKLOAD', 'TRANSPORT', 'IDENTITY'], rows };
}

function secrets(d: WaypointConfigDump): DumpTable {
  return {
    header: ['RESOURCE NAME', 'TYPE', 'IDENTITY', 'SERIAL NUMBER', 'NOT BEFORE', 'NOT AFTER', 'CERTIFICATES'],
    rows: (d.secrets ?? []).map((s) => {
      const pems = s.certChain ? splitPem(s.certChain) : [];
      let first: X509Certificate | undefined;
      try {
        first = pems[0] ? new X509Certificate(pems[0]) : undefined;
      } catch {
        first = undefined;
      }
      return [
        s.name,
        s.name === 'ROOTCA' ? 'CA' : 'Cert Chain',
        str(s.spiffeId ?? s.trustDomain),
        str(first?.serialNumber.toLowerCase()),
        first ? new Date(first.validFrom).toISOString() : '-',
        first ? new Date(first.validTo).toISOString() : '-',
        String(pems.length),
      ];
    }),
  };
}

export const PROXY_CONFIG_VIEWS: Readonly<Record<string, (d: WaypointConfigDump) => DumpTable>> = { listeners, routes, clusters, endpoints, secrets };

/** The part of the dump a view shows, for -o json (secrets: their certificates, never a key — the dump holds none). */
export function dumpPart(d: WaypointConfigDump, view: string): unknown {
  const type = { listeners: 'lds', routes: 'rds', clusters: 'cds', endpoints: 'eds' }[view];
  return type ? entries(d, type) : (d.secrets ?? []);
}
