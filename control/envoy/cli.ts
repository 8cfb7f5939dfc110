// `nodemesh waypoint bootstrap` (an Envoy bootstrap for a waypoint) and `nodemesh proxy-config xds`
// (what each xDS client was last sent, acknowledged and rejected, from the control plane's
// GET /debug/xds).
import { stringify } from 'yaml';
import { CliError, type Command } from '../../cli/command';
import { Bootstrap } from '../../api/gen/envoy/config/bootstrap/v3/bootstrap';
import { clientFrom, CONNECTION_HELP, connectionOptions, parse, processContext, type CliContext } from '../cmd/context';
import { formatTable } from '../../common/table';
import { waypointBootstrap } from './bootstrap';
import { type AdminTarget, httpAdmin, type LabAdmins } from '../../common/admin-target';
import { dumpPart, PROXY_CONFIG_VIEWS, type WaypointConfigDump } from './config-dump';
import type { DeltaTypeView } from '../xds/delta-state';
import { syncState, type XdsClientDump, type XdsTypeDump } from './debug';

const WAYPOINT_HELP = `usage: nodemesh waypoint bootstrap --name NAME [-n NAMESPACE] [options]

Prints an Envoy bootstrap that makes a real Envoy the waypoint of Gateway NAMESPACE/NAME:
node id waypoint~<ip>~<name>.<ns>~<ns>.svc.cluster.local, ADS to the control plane over mTLS,
LDS and CDS over ADS, internal listeners enabled. The ADS credential is the waypoint certificate
in --certs (written and renewed by 'nodemesh waypoint cert-agent'): the bootstrap holds no secret.

options:
  --name NAME            the waypoint's Gateway (required)
  -n, --namespace NS     its namespace (default: default)
  --ip IP                the waypoint's address (node id and metadata)
  --xds-address H:P      the control plane's TLS xDS port (default nodemesh-control.nodemesh-system.svc:15012)
  --xds-server-name SNI  name in the control plane's certificate (default: the host of --xds-address)
  --certs DIR            directory with cert-chain.pem, key.pem, root-cert.pem (default /var/run/nodemesh/certs)
  --delta                use delta ADS (default: state of the world)
  -o, --output FMT       yaml (default) or json`;

/** `nodemesh waypoint bootstrap …` (waypoint/cli.ts dispatches here). */
export async function runWaypointBootstrap(rest: string[], ctx: CliContext = processContext()): Promise<number> {
  const { values } = parse(
    'waypoint bootstrap',
    rest,
    {
      name: { type: 'string' },
      namespace: { type: 'string', short: 'n' },
      ip: { type: 'string' },
      'xds-address': { type: 'string' },
      'xds-server-name': { type: 'string' },
      certs: { type: 'string' },
      'token-file': { type: 'string' },
      delta: { type: 'boolean' },
      output: { type: 'string', short: 'o' },
      help: { type: 'boolean', short: 'h' },
    },
    false,
  );
  if (values.help) {
    ctx.stdout.write(WAYPOINT_HELP + '\n');
    return 0;
  }
  if (!values.name) throw new CliError("waypoint bootstrap: --name is required (the waypoint Gateway's name)", 2);
  const output = values.output ?? 'yaml';
  if (output !== 'yaml' && output !== 'json') throw new CliError(`waypoint bootstrap: -o must be yaml or json, not "${output}"`, 2);
  if (values['token-file'] !== undefined) {
    throw new CliError(
      "waypoint bootstrap: --token-file is no longer taken: the control plane takes the waypoint's certificate (--certs, kept current by 'nodemesh waypoint cert-agent') as the ADS credential, and a token in the bootstrap would be a secret Envoy never re-reads; drop the flag",
      2,
    );
  }
  const dir = values.certs?.replace(/\/+$/, '');
  let bootstrap: Bootstrap;
  try {
    bootstrap = waypointBootstrap({
      name: values.name,
      namespace: values.namespace ?? 'default',
      ip: values.ip,
      xdsAddress: values['xds-address'],
      xdsServerName: values['xds-server-name'],
      certFiles: dir ? { chain: `${dir}/cert-chain.pem`, key: `${dir}/key.pem`, roots: `${dir}/root-cert.pem` } : undefined,
      delta: values.delta,
    });
  } catch (err) {
    throw new CliError(`waypoint bootstrap: ${(err as Error).message}`, 2);
  }
  const json = Bootstrap.toJSON(bootstrap);
  ctx.stdout.write(output === 'json' ? JSON.stringify(json, null, 2) + '\n' : stringify(json));
  return 0;
}

const PROXY_CONFIG_HELP = `usage: nodemesh proxy-config listeners|routes|clusters|endpoints|secrets [WAYPOINT] [-o table|json] [--lab NAME | --admin HOST:PORT]
       nodemesh proxy-config xds [--client ID] [-o table|json] [--resources] [connection options]

listeners|routes|clusters|endpoints|secrets: what a waypoint accepted over xDS (like istioctl
proxy-config), from its admin config dump — listeners (address, HTTP route or TCP cluster),
routes (virtual host, match, cluster), clusters, endpoints (health, workload, HBONE, identity),
secrets (its certificate chain and roots: serial, validity; never the private key). WAYPOINT is
NAME or NAMESPACE/NAME; without it, the only waypoint of the lab (the default lab, or --lab NAME);
--admin HOST:PORT reads one waypoint's admin endpoint directly.

xds: shows every xDS client connected to the control plane (or those whose node id contains ID): per
resource type what it subscribed to, the version it was last sent, the version it acknowledged
(ACK) and any version it rejected (NACK) with the client's error.

options:
  --client ID        only clients whose node id contains ID
  -o, --output FMT   table (default) or json
  --resources        with -o json: the acknowledged resources in full (proto3 JSON)
${CONNECTION_HELP}`;

function formatType(short: string, t: XdsTypeDump | DeltaTypeView): string[] {
  if (!('typeUrl' in t)) {
    const acked = t.unacked ? `${t.unacked} responses not yet acknowledged` : 'all acknowledged';
    const lines = [`  ${short.padEnd(4)} delta  ${t.wildcard ? 'wildcard' : `${t.names.length} names`}  ${t.sent} resources sent, ${acked}`];
    if (t.nacked) lines.push(`  ${short.padEnd(4)} REJECTED code ${t.nacked.code}: ${t.nacked.message}`);
    return lines;
  }
  const lines: string[] = [];
  const sub = t.wildcard ? 'wildcard' : `${t.subscribed.length} names`;
  lines.push(`  ${short.padEnd(4)} subscribed ${sub}`);
  if (t.sent) lines.push(`  ${short.padEnd(4)} sent     ${t.sent.version} ${t.sent.resources.length} resources (nonce ${t.sent.nonce})`);
  lines.push(
    t.acked ? `  ${short.padEnd(4)} acked    ${t.acked.version} ${t.acked.resources.length} resources` : `  ${short.padEnd(4)} acked    (nothing yet)`,
  );
  if (t.rejected) lines.push(`  ${short.padEnd(4)} REJECTED ${t.rejected.version} code ${t.rejected.code}: ${t.rejected.message}`);
  return lines;
}

export function formatXdsClients(clients: readonly XdsClientDump[]): string {
  if (clients.length === 0) return 'no xDS clients connected\n';
  const out: string[] = [];
  for (const c of clients) {
    out.push(`${c.nodeId || '(no node id)'}  ${c.api} stream ${c.stream}  view ${c.view}  peer ${c.peer}`);
    for (const [short, t] of Object.entries(c.types)) out.push(...formatType(short, t));
  }
  return out.join('\n') + '\n';
}

/** Which waypoint admin endpoints a name picks: --admin, else the lab's waypoints (all, or those named NAME or NS/NAME). */
async function waypointTargets(
  sub: string,
  name: string | undefined,
  values: { lab?: string; admin?: string },
  labAdmins: () => Promise<LabAdmins | undefined>,
): Promise<AdminTarget> {
  if (values.admin) return httpAdmin(name ?? values.admin, values.admin);
  const all = (await labAdmins())?.labWaypointAdmins(values.lab);
  if (!all) throw new CliError(`proxy-config ${sub}: no lab '${values.lab ?? 'lab'}' here; give the waypoint's admin endpoint with --admin HOST:PORT`);
  const picked = name ? all.filter((t) => t.name === name || t.name.endsWith(`/${name}`)) : all;
  const names = all.map((t) => t.name).join(', ') || '(none)';
  if (picked.length === 0) throw new CliError(`proxy-config ${sub}: no waypoint '${name}' in the lab; its waypoints: ${names}`);
  if (picked.length > 1) throw new CliError(`proxy-config ${sub}: ${picked.length} waypoints match; name one of ${picked.map((t) => t.name).join(', ')}`, 2);
  return picked[0]!;
}

async function runWaypointConfig(sub: string, argv: string[], labAdmins: () => Promise<LabAdmins | undefined>, ctx: CliContext): Promise<number> {
  const { values, positionals } = parse(`proxy-config ${sub}`, argv, {
    output: { type: 'string', short: 'o' },
    lab: { type: 'string' },
    admin: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return (ctx.stdout.write(PROXY_CONFIG_HELP + '\n'), 0);
  if (positionals.length > 1) throw new CliError(`proxy-config ${sub}: one waypoint at a time, got ${positionals.join(' ')}`, 2);
  const output = values.output ?? 'table';
  if (output !== 'table' && output !== 'json') throw new CliError(`proxy-config ${sub}: -o must be table or json, not "${output}"`, 2);
  const target = await waypointTargets(sub, positionals[0], values, labAdmins);
  let r: { status: number; body: string };
  try {
    r = await target.get('/config_dump');
  } catch (err) {
    throw new CliError(`proxy-config ${sub}: cannot reach waypoint ${target.name}'s admin endpoint: ${(err as Error).message}`);
  }
  if (r.status !== 200) throw new CliError(`proxy-config ${sub}: waypoint ${target.name} answered /config_dump with HTTP ${r.status}`);
  const dump = JSON.parse(r.body) as WaypointConfigDump;
  if (output === 'json') ctx.stdout.write(JSON.stringify(dumpPart(dump, sub), null, 2) + '\n');
  else {
    const t = PROXY_CONFIG_VIEWS[sub]!(dump);
    ctx.stdout.write(formatTable(t.header, t.rows));
  }
  return 0;
}

export async function runProxyConfig(
  argv: string[],
  ctx: CliContext = processContext(),
  labAdmins: () => Promise<LabAdmins | undefined> = async () => undefined,
): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h') {
    ctx.stdout.write(PROXY_CONFIG_HELP + '\n');
    return sub ? 0 : 2;
  }
  if (sub in PROXY_CONFIG_VIEWS) return runWaypointConfig(sub, rest, labAdmins, ctx);
  if (sub !== 'xds') throw new CliError(`proxy-config: unknown subcommand '${sub}'; one of xds, ${Object.keys(PROXY_CONFIG_VIEWS).join(', ')}`, 2);
  const { values } = parse(
    'proxy-config xds',
    rest,
    {
      ...connectionOptions,
      client: { type: 'string' },
      output: { type: 'string', short: 'o' },
      resources: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    false,
  );
  if (values.help) {
    ctx.stdout.write(PROXY_CONFIG_HELP + '\n');
    return 0;
  }
  const output = values.output ?? 'table';
  if (output !== 'table' && output !== 'json') throw new CliError(`proxy-config xds: -o must be table or json, not "${output}"`, 2);
  const api = clientFrom(values, ctx);
  const q = new URLSearchParams();
  if (values.client) q.set('client', values.client);
  if (values.resources) q.set('resources', '1');
  let body: { clients: XdsClientDump[] };
  try {
    body = await api.debug<{ clients: XdsClientDump[] }>(`xds${q.size ? `?${q.toString()}` : ''}`);
  } catch (err) {
    throw new CliError(`proxy-config xds: ${(err as Error).message}. Is the control plane running with the Envoy xDS component?`, 1);
  }
  ctx.stdout.write(output === 'json' ? JSON.stringify(body.clients, null, 2) + '\n' : formatXdsClients(body.clients));
  if (values.client && body.clients.length === 0) {
    ctx.stderr.write(`proxy-config xds: no connected client's node id contains "${values.client}"\n`);
    return 1;
  }
  return 0;
}

const PROXY_STATUS_HELP = `usage: nodemesh proxy-status [-o table|json] [connection options]

One line per proxy connected to the control plane over xDS — node proxies (workload API, delta),
waypoints and proxyless gRPC clients (Envoy types) — and, per resource type, whether it has
acknowledged what it was last sent: SYNCED, STALE (sent, not yet acknowledged), NACKED (the
proxy rejected it: see 'nodemesh proxy-config xds --client ID'), NOT SENT. On delta streams SYNCED
means every response was acknowledged, NACKED that the last one answered was rejected. Node
proxies' workload API types are WDS (addresses), AUTHZ and PEERAUTHN; their view is workload-api.

${CONNECTION_HELP}`;

export function proxyStatusTable(clients: readonly XdsClientDump[]): string {
  if (clients.length === 0) return 'no proxies connected\n';
  const shorts = [...new Set(clients.flatMap((c) => Object.keys(c.types)))].sort();
  const rows = clients.map((c) => [c.nodeId || '(no node id)', c.api, c.view, c.peer, ...shorts.map((s) => (c.types[s] ? syncState(c.types[s]) : '-'))]);
  return formatTable(['PROXY', 'API', 'VIEW', 'PEER', ...shorts.map((s) => s.toUpperCase())], rows);
}

export async function runProxyStatus(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { values } = parse(
    'proxy-status',
    argv,
    { ...connectionOptions, output: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } },
    false,
  );
  if (values.help) return (ctx.stdout.write(PROXY_STATUS_HELP + '\n'), 0);
  const output = values.output ?? 'table';
  if (output !== 'table' && output !== 'json') throw new CliError(`proxy-status: -o must be table or json, not "${output}"`, 2);
  let body: { clients: XdsClientDump[] };
  try {
    body = await clientFrom(values, ctx).debug<{ clients: XdsClientDump[] }>('xds');
  } catch (err) {
    throw new CliError(`proxy-status: ${(err as Error).message}`, 1);
  }
  if (output === 'json') {
    const rows = body.clients.map((c) => ({
      proxy: c.nodeId,
      api: c.api,
      view: c.view,
      peer: c.peer,
      types: Object.fromEntries(Object.entries(c.types).map(([k, t]) => [k, syncState(t)])),
    }));
    ctx.stdout.write(JSON.stringify(rows, null, 2) + '\n');
  } else ctx.stdout.write(proxyStatusTable(body.clients));
  return 0;
}

export const proxyStatusCommand: Command = {
  name: 'proxy-status',
  summary: 'every proxy connected over xDS and whether it acknowledged its config',
  run: (argv) => runProxyStatus(argv),
};

export const proxyConfigCommand: Command = {
  name: 'proxy-config',
  summary: "a waypoint's listeners, routes, clusters, endpoints, secrets; what xDS clients were sent and acknowledged",
  run: (argv) => runProxyConfig(argv),
};

/** proxy-config with a netns lab's waypoints as targets (cli/main.ts lends them). */
export function proxyConfigCommandWith(labAdmins: () => Promise<LabAdmins | undefined>): Command {
  return { ...proxyConfigCommand, run: (argv) => runProxyConfig(argv, processContext(), labAdmins) };
}
