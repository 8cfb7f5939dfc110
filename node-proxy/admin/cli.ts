// `nodemesh node-config workloads|services|policies|certificates|connections`: the node proxy's own
// view of the mesh (like `istioctl ztunnel-config`), read from its admin endpoint (15000) — every
// node proxy of a netns lab (each inside its node's netns), or one at --admin HOST:PORT.
import { parseArgs } from 'node:util';
import { CliError, usageError, type Command } from '../../cli/command';
import { type AdminTarget, httpAdmin, type LabAdmins } from '../../common/admin-target';
import { ADMIN_PORT } from '../../common/contracts/ports';
import { formatTable } from '../../common/table';

type Row = Record<string, unknown>;

interface View {
  /** The admin path (its rows come under a PROXY column naming the node proxy's node). */
  readonly path: string;
  /** Rows of a second admin path joining this view's, each marked with `kind` (policies: PeerAuthentications). */
  readonly also?: { readonly path: string; readonly kind: string; readonly ownKind: string };
  readonly header: readonly string[];
  row(r: Row): string[];
}

const str = (v: unknown): string => (v === undefined || v === null || v === '' ? '-' : String(v));
const list = (v: unknown): string => (Array.isArray(v) && v.length ? v.map(str).join(',') : '-');
const waypoint = (v: unknown): string => {
  const w = v as { gateway?: string; address?: string; hostname?: string; unresolvedReason?: string } | undefined;
  if (!w) return 'None';
  return w.gateway || w.hostname || w.address || (w.unresolvedReason ? `unresolved: ${w.unresolvedReason}` : '-');
};
const endpoint = (v: unknown): string => {
  const e = v as { address?: string; port?: number } | undefined;
  if (!e?.address) return '-';
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
};
const ACTIONS: Record<string, string> = { '0': 'ALLOW', '1': 'DENY', AUTHORIZATION_ACTION_ALLOW: 'ALLOW', AUTHORIZATION_ACTION_DENY: 'DENY' };
// Both AuthorizationScope and PeerAuthenticationScope number their scopes mesh 0, namespace 1, selector 2.
const SCOPES: Record<string, string> = { '0': 'Global', '1': 'Namespace', '2': 'WorkloadSelector' };
const MTLS_MODES: Record<string, string> = { '0': 'UNSET', '1': 'PERMISSIVE', '2': 'STRICT' };

export const NODE_CONFIG_VIEWS: Readonly<Record<string, View>> = {
  workloads: {
    path: '/mesh/workloads',
    header: ['NAMESPACE', 'NAME', 'ADDRESS', 'NODE', 'WAYPOINT', 'PROTOCOL'],
    row: (w) => [str(w.namespace), str(w.name), list(w.addresses), str(w.node), waypoint(w.waypoint), str(w.protocol)],
  },
  services: {
    path: '/services',
    header: ['NAMESPACE', 'SERVICE NAME', 'SERVICE VIP', 'WAYPOINT', 'ENDPOINTS'],
    row: (s) => {
      // name is "<namespace>/<hostname>"; the Service's own name is the hostname's first label
      const ns = String(s.name ?? '').split('/')[0];
      const eps = new Set((Array.isArray(s.endpoints) ? s.endpoints : []).map((e: { workload?: string }) => e.workload));
      return [str(ns), str(String(s.hostname ?? '').split('.')[0]), list(s.vips), waypoint(s.waypoint), String(eps.size)];
    },
  },
  // Every policy the node proxy enforces: AuthorizationPolicies (selector, namespace-wide and
  // mesh-wide ones) and PeerAuthentications (mesh, namespace, selector), whose mode is the action.
  policies: {
    path: '/policies',
    also: { path: '/peer-authentications', kind: 'PeerAuthentication', ownKind: 'AuthorizationPolicy' },
    header: ['NAMESPACE', 'POLICY NAME', 'KIND', 'ACTION', 'SCOPE', 'RULES'],
    row: (p) =>
      p.kind === 'PeerAuthentication'
        ? [
            str(p.namespace),
            str(p.name),
            'PeerAuthentication',
            `mTLS ${MTLS_MODES[String(p.mode ?? 0)] ?? str(p.mode)}`,
            SCOPES[String(p.scope ?? 0)] ?? str(p.scope),
            // port-level modes, the PeerAuthentication's only rules
            String(Object.keys((p.portLevelMtls as object | undefined) ?? {}).length),
          ]
        : [
            str(p.namespace),
            str(p.name),
            'AuthorizationPolicy',
            ACTIONS[String(p.action ?? 0)] ?? str(p.action),
            SCOPES[String(p.scope ?? 0)] ?? str(p.scope),
            String(Array.isArray(p.rules) ? p.rules.length : 0),
          ],
  },
  certificates: {
    path: '/certificates',
    header: ['WORKLOAD', 'IDENTITY', 'STATE', 'NOT AFTER', 'RENEW AT'],
    row: (c) => [str(c.workload), str(c.spiffeId), str(c.state), str(c.notAfter), str(c.renewAt)],
  },
  connections: {
    path: '/connections',
    header: ['WORKLOAD', 'DIRECTION', 'SOURCE', 'DESTINATION', 'PROTOCOL', 'PEER IDENTITY', 'BYTES SENT', 'BYTES RECEIVED', 'OPENED'],
    row: (c) => {
      const d = (c.details ?? {}) as Row;
      return [
        str(c.workload),
        str(c.direction),
        endpoint(c.source),
        endpoint(c.originalDestination),
        str(d.protocol),
        str(d.peerIdentity ?? (c.direction === 'outbound' ? d.destinationIdentity : d.sourceIdentity)),
        str(c.bytesSent),
        str(c.bytesReceived),
        str(c.openedAt),
      ];
    },
  },
};

const HELP = `usage: nodemesh node-config workloads|services|policies|certificates|connections [--node NODE] [-o table|json]
                            [--lab NAME | --admin HOST:PORT]

What a node proxy itself believes (like istioctl ztunnel-config), read from its admin endpoint:
  workloads     every workload it knows (address, node, waypoint, protocol)
  services      every Service (VIPs, waypoint, number of endpoints)
  policies      the policies it enforces: AuthorizationPolicies (action) and PeerAuthentications
                (mTLS mode), mesh-wide (Global), namespace-wide and by workload selector
  certificates  the workload certificates it holds for its enrolled workloads (state, expiry, renewal)
  connections   the captured connections open right now

Where: in a netns lab (the default lab when it exists, or --lab NAME) every node proxy, inside
its node's network namespace; otherwise the node proxy on this host (127.0.0.1:${ADMIN_PORT}) or --admin.

options:
  --node NODE        only this node's proxy (lab)
  -o, --output FMT   table (default) or json
  --lab NAME         the netns lab to read (default 'lab')
  --admin HOST:PORT  one node proxy's admin endpoint`;

/** The rows of every target, each row with its node's name first. */
async function gather(targets: readonly AdminTarget[], path: string): Promise<Array<{ node: string; rows: Row[] }>> {
  return Promise.all(
    targets.map(async (t) => {
      let r: { status: number; body: string };
      try {
        r = await t.get(path);
      } catch (err) {
        throw new CliError(`node-config: cannot reach the node proxy of ${t.name}: ${(err as Error).message}. Is it running? ('nodemesh lab status')`);
      }
      if (r.status !== 200)
        throw new CliError(`node-config: the node proxy of ${t.name} answered ${path} with HTTP ${r.status}: ${r.body.trim().slice(0, 200)}`);
      const body = JSON.parse(r.body) as unknown;
      return { node: t.name, rows: Array.isArray(body) ? (body as Row[]) : [] };
    }),
  );
}

export async function runNodeConfig(
  argv: string[],
  labAdmins: () => Promise<LabAdmins | undefined>,
  out: { stdout: NodeJS.WritableStream } = process,
): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h') {
    out.stdout.write(HELP + '\n');
    return sub ? 0 : 2;
  }
  const view = NODE_CONFIG_VIEWS[sub];
  if (!view) throw new CliError(`node-config: unknown view '${sub}'; one of ${Object.keys(NODE_CONFIG_VIEWS).join(', ')}`, 2);
  let values: { node?: string; output?: string; lab?: string; admin?: string; help?: boolean };
  try {
    values = parseArgs({
      args: rest,
      options: {
        node: { type: 'string' },
        output: { type: 'string', short: 'o' },
        lab: { type: 'string' },
        admin: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
      strict: true,
    }).values;
  } catch (err) {
    throw usageError(`node-config ${sub}`, err) ?? err;
  }
  if (values.help) {
    out.stdout.write(HELP + '\n');
    return 0;
  }
  const output = values.output ?? 'table';
  if (output !== 'table' && output !== 'json') throw new CliError(`node-config ${sub}: -o must be table or json, not "${output}"`, 2);
  if (values.admin && values.lab) throw new CliError(`node-config ${sub}: give --lab or --admin, not both`, 2);

  let targets: AdminTarget[];
  if (values.admin) targets = [httpAdmin(values.node ?? values.admin, values.admin)];
  else {
    const lab = (await labAdmins())?.labNodeAdmins(values.lab);
    if (!lab && values.lab) throw new CliError(`node-config: there is no lab '${values.lab}' ('nodemesh lab up --lab ${values.lab}' makes one)`);
    targets = lab ?? [httpAdmin('localhost', `127.0.0.1:${ADMIN_PORT}`)];
  }
  if (values.node && !values.admin) {
    const names = targets.map((t) => t.name);
    targets = targets.filter((t) => t.name === values.node);
    if (targets.length === 0) throw new CliError(`node-config: no node '${values.node}'; the nodes are ${names.join(', ') || '(none)'}`);
  }

  const per = await gather(targets, view.path);
  if (view.also) {
    const { path, kind, ownKind } = view.also;
    const more = await gather(targets, path);
    per.forEach((p, i) => {
      p.rows = [...p.rows.map((r) => ({ kind: ownKind, ...r })), ...(more[i]?.rows ?? []).map((r) => ({ kind, ...r }))];
    });
  }
  if (output === 'json') {
    out.stdout.write(JSON.stringify(Object.fromEntries(per.map((p) => [p.node, p.rows])), null, 2) + '\n');
    return 0;
  }
  const rows = per.flatMap((p) => p.rows.map((r) => [p.node, ...view.row(r)]));
  out.stdout.write(formatTable(['PROXY', ...view.header], rows));
  return 0;
}

export function nodeConfigCommand(labAdmins: () => Promise<LabAdmins | undefined>): Command {
  return {
    name: 'node-config',
    summary: "a node proxy's own view: workloads, services, policies, certificates, connections (like istioctl ztunnel-config)",
    run: (argv) => runNodeConfig(argv, labAdmins),
  };
}
