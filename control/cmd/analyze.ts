// `nodemesh analyze`: reads every resource through the config API (and which node proxies are
// connected, from GET /debug/xds) and prints what is wrong together (control/analyze).
import { CliError, type Command } from '../../cli/command';
import { analyze, type Finding } from '../analyze/analyze';
import type { XdsClientDump } from '../envoy/debug';
import { KINDS, type AnyResource } from '../resources';
import { formatTable } from '../../common/table';
import { clientFrom, CONNECTION_HELP, connectionOptions, parse, processContext, type CliContext } from './context';

const HELP = `usage: nodemesh analyze [-o table|json] [connection options]

Checks the configuration as a whole and prints each problem with its severity, a code and the
resource it concerns: HTTPRoutes to missing Services (NM0101, NM0102), policies whose selector
matches no workload (NM0201) or whose targetRef does not exist (NM0202), use-waypoint labels
naming no waypoint Gateway (NM0301), enrolled workloads on nodes with no node proxy connected
(NM0401). Exits 1 when there is an Error, else 0.

${CONNECTION_HELP}`;

const NODE_PROXY_PREFIX = 'node-proxy~';

export async function runAnalyze(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { values } = parse('analyze', argv, { ...connectionOptions, output: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } }, false);
  if (values.help) return (ctx.stdout.write(HELP + '\n'), 0);
  const output = values.output ?? 'table';
  if (output !== 'table' && output !== 'json') throw new CliError(`analyze: -o must be table or json, got '${output}'`, 2);
  const api = clientFrom(values, ctx);
  const resources: AnyResource[] = [];
  try {
    for (const kind of KINDS) resources.push(...(await api.list<AnyResource>(kind)).items);
  } catch (err) {
    throw new CliError(`analyze: ${(err as Error).message}`, 1);
  }
  let connectedNodes: Set<string> | undefined;
  try {
    const { clients } = await api.debug<{ clients: XdsClientDump[] }>('xds');
    connectedNodes = new Set(clients.filter((c) => c.nodeId.startsWith(NODE_PROXY_PREFIX)).map((c) => c.nodeId.slice(NODE_PROXY_PREFIX.length)));
  } catch {
    connectedNodes = undefined; // no xDS component: the node proxy check is skipped
  }
  // The control plane's NODEMESH_ROOT_NAMESPACE is not served; the same variable here says it.
  const findings: Finding[] = analyze({ resources, connectedNodes, rootNamespace: process.env.NODEMESH_ROOT_NAMESPACE || undefined });
  if (output === 'json') ctx.stdout.write(JSON.stringify(findings, null, 2) + '\n');
  else if (findings.length === 0) ctx.stdout.write(`no problems found in ${resources.length} resources\n`);
  else
    ctx.stdout.write(
      formatTable(
        ['SEVERITY', 'CODE', 'RESOURCE', 'MESSAGE'],
        findings.map((f) => [f.severity, f.code, f.resource, f.message]),
      ),
    );
  if (connectedNodes === undefined && output === 'table')
    ctx.stderr.write('analyze: the control plane serves no xDS debug data; enrolled nodes without a node proxy were not checked\n');
  return findings.some((f) => f.severity === 'Error') ? 1 : 0;
}

export const analyzeCommand: Command = {
  name: 'analyze',
  summary: 'find configuration that is valid alone but wrong together',
  run: (argv) => runAnalyze(argv),
};
