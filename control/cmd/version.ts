// `nodemesh version`: this CLI's build and, when the config API is reachable, the control plane's.
import { buildInfo, type BuildInfo } from '../../common/version';
import { CliError, type Command } from '../../cli/command';
import { clientFrom, CONNECTION_HELP, connectionOptions, parse, processContext, type CliContext } from './context';

const HELP = `usage: nodemesh version [--client] [-o text|json] [connection options]

Prints this CLI's version, the commit it was built from and its Node.js, then the control plane's
(GET /version on the config API) when it is reachable; an unreachable control plane is reported,
not an error. --client skips the control plane.

${CONNECTION_HELP}`;

const line = (who: string, b: BuildInfo): string => `${who}: nodemesh ${b.version} (commit ${b.commit}, node ${b.node})\n`;

export async function runVersion(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { values } = parse(
    'version',
    argv,
    { ...connectionOptions, client: { type: 'boolean' }, output: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } },
    false,
  );
  if (values.help) return (ctx.stdout.write(HELP + '\n'), 0);
  const output = values.output ?? 'text';
  if (output !== 'text' && output !== 'json') throw new CliError(`version: -o must be text or json, got '${output}'`, 2);
  const client = buildInfo();
  let server: BuildInfo | undefined;
  let unreachable: string | undefined;
  if (!values.client) {
    try {
      server = await clientFrom(values, ctx).version<BuildInfo>();
    } catch (err) {
      unreachable = (err as Error).message.split('\n')[0];
    }
  }
  if (output === 'json') {
    ctx.stdout.write(JSON.stringify({ client, ...(server ? { server } : {}), ...(unreachable ? { serverError: unreachable } : {}) }, null, 2) + '\n');
    return 0;
  }
  ctx.stdout.write(line('client', client));
  if (server) ctx.stdout.write(line('server', server));
  else if (unreachable) ctx.stdout.write(`server: not reachable (${unreachable})\n`);
  return 0;
}

export const versionCommand: Command = { name: 'version', summary: "this CLI's version and the control plane's", run: (argv) => runVersion(argv) };
