#!/usr/bin/env node
// The one entry point: `nodemesh <command> …`. Each component owns its subcommands; this file only
// dispatches, so a component's code is loaded only when its command runs.
import { CliError, type Command } from './command';

// The config commands reach a netns lab's control plane with --lab: the lab lends them a dialer.
async function withLabDialer(command: Promise<Command>): Promise<Command> {
  const [{ registerControlPlaneDialer }, { labDialer }] = await Promise.all([import('../control/cmd/context.js'), import('../lab/mesh/connect.js')]);
  registerControlPlaneDialer(labDialer);
  return command;
}

const commands: Record<string, () => Promise<Command>> = {
  // one line per component: name: async () => (await import('../component/cli')).someCommand,
  lab: async () => (await import('../lab/cli.js')).labCommand,
  // --lab: the lab lends the node proxy its pods as a workload source (lab/node-source.ts)
  'node-proxy': async () => (await import('../node-proxy/cli.js')).nodeProxyCommand(async () => (await import('../lab/node-source.js')).labNodes),
  doctor: async () => (await import('../node-proxy/doctor/cli.js')).doctorCommand,
  ca: async () => (await import('../control/ca/cli.js')).caCommand,
  xds: async () => (await import('../control/xds/cli.js')).xdsCommand,
  control: async () => (await import('../control/cli.js')).controlCommand,
  apply: async () => withLabDialer(import('../control/cli.js').then((m) => m.applyCommand)),
  get: async () => withLabDialer(import('../control/cli.js').then((m) => m.getCommand)),
  delete: async () => withLabDialer(import('../control/cli.js').then((m) => m.deleteCommand)),
  namespace: async () => withLabDialer(import('../control/cli.js').then((m) => m.namespaceCommand)),
  'proxy-config': async () => withLabDialer(import('../control/envoy/cli.js').then((m) => m.proxyConfigCommand)),
  waypoint: async () => withLabDialer(import('../waypoint/cli.js').then((m) => m.waypointCommand)),
};

function usage(): string {
  const names = Object.keys(commands).sort().join(', ');
  return `usage: nodemesh <command> [options]\ncommands: ${names}\nrun 'nodemesh <command> --help' for a command's options`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 2;
  }
  const load = commands[name];
  if (!load) {
    process.stderr.write(`nodemesh: unknown command '${name}'\n${usage()}\n`);
    return 2;
  }
  const command = await load();
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof CliError) {
      process.stderr.write(`nodemesh: ${err.message}\n`);
      process.exitCode = err.exitCode;
    } else {
      process.stderr.write(`nodemesh: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
