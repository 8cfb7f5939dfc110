// `nodemesh waypoint <subcommand>`: `run` starts the L7 proxy (this folder); `bootstrap` (the Envoy
// bootstrap for running a real Envoy as the waypoint) is added by control/envoy.
import { parseArgs } from 'node:util';
import { CliError, type Command } from '../cli/command';
import { createLogger } from '../common/log';
import { Waypoint } from './waypoint';

const RUN_USAGE = `usage: nodemesh waypoint run --name NAME -n NAMESPACE [--control HOST:PORT] [options]
  --control ADDR         control plane xDS (plaintext gRPC, default 127.0.0.1:15010)
  --listen-address IP    address the HTTP listeners bind (default 0.0.0.0)
  --admin-port N         admin (config dump), loopback (default 15000)
  --metrics-port N       Prometheus metrics (default 15020)
  --ready-port N         readiness /healthz/ready (default 15021)
  --otlp-endpoint URL    export spans over OTLP/HTTP JSON to URL/v1/traces`;

async function run(argv: string[]): Promise<number> {
  let v;
  try {
    v = parseArgs({
      args: argv,
      options: {
        name: { type: 'string' },
        namespace: { type: 'string', short: 'n' },
        control: { type: 'string', default: '127.0.0.1:15010' },
        'listen-address': { type: 'string' },
        'admin-port': { type: 'string' },
        'metrics-port': { type: 'string' },
        'ready-port': { type: 'string' },
        'otlp-endpoint': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    throw new CliError(`${err instanceof Error ? err.message : String(err)}\n${RUN_USAGE}`, 2);
  }
  if (v.help) {
    process.stdout.write(RUN_USAGE + '\n');
    return 0;
  }
  if (!v.name || !v.namespace) throw new CliError(`--name and -n/--namespace are required\n${RUN_USAGE}`, 2);
  const port = (s: string | undefined, d: number, what: string): number => {
    if (s === undefined) return d;
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CliError(`${what} ${s} is not a port number (0-65535)`, 2);
    return n;
  };
  const logger = createLogger('waypoint');
  const wp = new Waypoint({
    name: v.name,
    namespace: v.namespace,
    control: v.control!,
    listenAddress: v['listen-address'],
    adminPort: port(v['admin-port'], 15000, '--admin-port'),
    metricsPort: port(v['metrics-port'], 15020, '--metrics-port'),
    readyPort: port(v['ready-port'], 15021, '--ready-port'),
    otlpEndpoint: v['otlp-endpoint'],
    logger,
  });
  try {
    await wp.start();
  } catch (err) {
    throw new CliError(`the waypoint could not start: ${err instanceof Error ? err.message : String(err)} (is another process using ports 15000/15020/15021? pick others with --admin-port/--metrics-port/--ready-port)`);
  }
  logger.info({ name: v.name, namespace: v.namespace, control: v.control, ports: wp.ports }, 'waypoint started; waiting for xDS');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await wp.stop();
  return 0;
}

const subcommands: Record<string, (argv: string[]) => Promise<number>> = {
  run,
  bootstrap: async (argv) => (await import('../control/envoy/cli.js')).runWaypointBootstrap(argv),
};

export const waypointCommand: Command = {
  name: 'waypoint',
  summary: 'the L7 waypoint proxy: run',
  async run(argv) {
    const [sub, ...rest] = argv;
    const f = sub ? subcommands[sub] : undefined;
    if (!f) {
      process.stderr.write(`usage: nodemesh waypoint <${Object.keys(subcommands).join('|')}> [options]\n`);
      return sub === '--help' || sub === '-h' ? 0 : 2;
    }
    return f(rest);
  },
};
