// `nodemesh waypoint apply|list|delete`: operating waypoints through the config API (control/api's
// client, reached the way every config command is: --server, or --lab for a netns lab). In the lab,
// the lab controller starts a waypoint process for an applied Gateway and stops it on delete.
import { request } from 'node:http';
import { CliError } from '../../cli/command';
import { ApiError, type ApiClient } from '../../control/api/client';
import { clientFrom, CONNECTION_HELP, connectionOptions, parse, processContext, type CliContext } from '../../control/cmd/context';
import { formatTable } from '../../common/table';
import { kindInfo, type KindInfo } from '../../control/resources/kinds';
import { USE_WAYPOINT_LABEL, WAYPOINT_FOR_LABEL } from '../../common/contracts/labels';
import { netnsGet } from '../../native/netns-http';
import {
  checkWaypointFor,
  DEFAULT_WAYPOINT_NAME,
  namespaceLabelsFor,
  waypointGateway,
  waypointRows,
  type GatewayLike,
  type WaypointRow,
  type WorkloadLike,
} from './model';
import { READY_PORT } from '../../common/contracts/ports';

const GATEWAY = kindInfo('Gateway') as KindInfo;
const WORKLOAD = kindInfo('Workload') as KindInfo;
const NAMESPACE = kindInfo('Namespace') as KindInfo;

export const APPLY_HELP = `usage: nodemesh waypoint apply -n NAMESPACE [--name NAME] [--for service|workload|all] [--enroll-namespace]
creates or updates the waypoint Gateway NAME (default '${DEFAULT_WAYPOINT_NAME}', gatewayClassName nodemesh-waypoint,
an HBONE listener on 15008, label ${WAYPOINT_FOR_LABEL}=<--for, default service>); --enroll-namespace labels
the namespace ${USE_WAYPOINT_LABEL}=NAME so its services use it. In a netns lab the lab controller
starts the waypoint in a pod of its own within seconds.
${CONNECTION_HELP}`;
export const LIST_HELP = `usage: nodemesh waypoint list [-n NAMESPACE | -A]
each waypoint Gateway: what it serves, the node and address it runs on, and whether it is ready.
${CONNECTION_HELP}`;
export const DELETE_HELP = `usage: nodemesh waypoint delete NAME -n NAMESPACE
deletes the waypoint Gateway (its process stops) and the namespace's ${USE_WAYPOINT_LABEL} label when it names NAME.
${CONNECTION_HELP}`;

interface NamespaceDoc {
  metadata: { name: string; labels?: Record<string, string>; resourceVersion?: string };
  spec?: unknown;
}

async function getNamespace(api: ApiClient, name: string): Promise<NamespaceDoc | undefined> {
  try {
    return await api.get<NamespaceDoc>(NAMESPACE, name);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined;
    throw err;
  }
}

/** Sets or removes use-waypoint on a namespace (conditional update, retried on conflict). */
async function labelNamespace(api: ApiClient, ns: string, name: string, use: boolean): Promise<'changed' | 'unchanged'> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const doc = await getNamespace(api, ns);
    if (!doc) {
      if (!use) return 'unchanged';
      await api.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { [USE_WAYPOINT_LABEL]: name } } }]);
      return 'changed';
    }
    const labels = namespaceLabelsFor(doc.metadata.labels, name, use);
    if (!labels) return 'unchanged';
    try {
      await api.put(NAMESPACE, {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ns, labels, resourceVersion: doc.metadata.resourceVersion },
        spec: doc.spec,
      });
      return 'changed';
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) continue;
      throw err;
    }
  }
  throw new CliError(`namespace ${ns} kept changing while it was being labelled; try again`);
}

const fail = (err: unknown): never => {
  if (err instanceof CliError) throw err;
  throw new CliError((err as Error).message);
};

export async function waypointApply(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { values, positionals } = parse('waypoint apply', argv, {
    ...connectionOptions,
    namespace: { type: 'string', short: 'n' },
    name: { type: 'string' },
    for: { type: 'string' },
    'enroll-namespace': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return (ctx.stdout.write(APPLY_HELP + '\n'), 0);
  if (!values.namespace || positionals.length)
    throw new CliError(`waypoint apply: -n NAMESPACE is required and takes no positional arguments\n${APPLY_HELP}`, 2);
  let forWhat;
  try {
    forWhat = checkWaypointFor(values.for);
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }
  const name = values.name ?? DEFAULT_WAYPOINT_NAME;
  const api = clientFrom(values, ctx);
  try {
    // The namespace first when enrolling it (it is created if missing), so the Gateway can go in.
    const enrolled = values['enroll-namespace'] ? await labelNamespace(api, values.namespace, name, true) : undefined;
    const r = await api.apply([waypointGateway(name, values.namespace, forWhat)]);
    const action = r.results[0]?.action ?? 'configured';
    ctx.stdout.write(`gateway/${name} ${action} in namespace ${values.namespace} (waypoint for ${forWhat})\n`);
    for (const w of r.warnings) ctx.stderr.write(`warning: ${w}\n`);
    if (enrolled) {
      ctx.stdout.write(
        enrolled === 'changed'
          ? `namespace/${values.namespace} uses waypoint ${name} (${USE_WAYPOINT_LABEL}=${name})\n`
          : `namespace/${values.namespace} already uses waypoint ${name}\n`,
      );
    }
    return 0;
  } catch (err) {
    return fail(err);
  }
}

export async function waypointDelete(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { values, positionals } = parse('waypoint delete', argv, {
    ...connectionOptions,
    namespace: { type: 'string', short: 'n' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return (ctx.stdout.write(DELETE_HELP + '\n'), 0);
  const [name, extra] = positionals;
  if (!name || extra || !values.namespace) throw new CliError(`waypoint delete: give NAME and -n NAMESPACE\n${DELETE_HELP}`, 2);
  const api = clientFrom(values, ctx);
  try {
    await api.delete(GATEWAY, name, values.namespace);
    ctx.stdout.write(`gateway/${name} deleted from namespace ${values.namespace}\n`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404)
      throw new CliError(`waypoint ${values.namespace}/${name} does not exist ('nodemesh waypoint list -A' shows the waypoints)`);
    return fail(err);
  }
  try {
    if ((await labelNamespace(api, values.namespace, name, false)) === 'changed')
      ctx.stdout.write(`namespace/${values.namespace}: removed ${USE_WAYPOINT_LABEL}=${name}\n`);
    return 0;
  } catch (err) {
    return fail(err);
  }
}

/** Readiness of a waypoint: its /healthz/ready on 15021 — inside its netns when the Workload names one (lab), else at its address. */
async function probeReady(row: WaypointRow): Promise<string> {
  const answer = (status: number, body: string): string => (status === 200 ? 'ready' : `not ready (${status}: ${body.replace(/\s+/g, ' ').slice(0, 50)})`);
  try {
    if (row.netnsPath) {
      const r = await netnsGet(row.netnsPath, '127.0.0.1', READY_PORT, '/healthz/ready', {}, 1500);
      return answer(r.status, r.body);
    }
    const addr = row.address.split(',')[0];
    if (!addr || addr === '-') return row.ready;
    return await new Promise<string>((resolve) => {
      const req = request({ host: addr, port: READY_PORT, path: '/healthz/ready', timeout: 1500, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve(answer(res.statusCode ?? 0, body)));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => resolve(`unknown (${(e as NodeJS.ErrnoException).code ?? e.message})`));
      req.end();
    });
  } catch (err) {
    return `not answering (${(err as Error).message.slice(0, 50)})`;
  }
}

export async function waypointList(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { values, positionals } = parse('waypoint list', argv, {
    ...connectionOptions,
    namespace: { type: 'string', short: 'n' },
    'all-namespaces': { type: 'boolean', short: 'A' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return (ctx.stdout.write(LIST_HELP + '\n'), 0);
  if (positionals.length) throw new CliError(`waypoint list takes no positional arguments\n${LIST_HELP}`, 2);
  const ns = values['all-namespaces'] ? undefined : (values.namespace ?? 'default');
  const api = clientFrom(values, ctx);
  let rows: WaypointRow[];
  try {
    const [gws, wls, nss] = await Promise.all([
      api.list<GatewayLike>(GATEWAY, ns),
      api.list<WorkloadLike>(WORKLOAD, ns),
      api.list<{ metadata: { name: string; labels?: Record<string, string> } }>(NAMESPACE),
    ]);
    rows = waypointRows(gws.items, wls.items, nss.items);
  } catch (err) {
    return fail(err);
  }
  rows = await Promise.all(rows.map(async (r) => (r.address === '-' ? r : { ...r, ready: await probeReady(r) })));
  if (values.json) {
    ctx.stdout.write(
      JSON.stringify(
        rows.map(({ netnsPath: _n, ...r }) => r),
        null,
        2,
      ) + '\n',
    );
    return 0;
  }
  if (rows.length === 0) {
    ctx.stdout.write(ns ? `no waypoints in namespace ${ns}\n` : 'no waypoints\n');
    return 0;
  }
  ctx.stdout.write(
    formatTable(
      ['NAMESPACE', 'NAME', 'FOR', 'NODE', 'ADDRESS', 'READY', 'NAMESPACE USES IT'],
      rows.map((r) => [r.namespace, r.name, r.for, r.node, r.address, r.ready, r.enrolled ? 'yes' : 'no']),
    ),
  );
  return 0;
}
