#!/usr/bin/env node
// The one entry point: `nodemesh <command> …`. Each component owns its subcommands; this file only
// dispatches, so a component's code is loaded only when its command runs.
import { CATALOG, completions, completionScript, topLevelHelp } from './catalog';
import { CliError, usageError, type Command } from './command';
import type { Explainer } from '../control/api/explain';

// The config commands reach a netns lab's control plane with --lab: the lab lends them a dialer.
async function withLabDialer(command: Promise<Command>): Promise<Command> {
  const [{ registerControlPlaneDialer }, { labDialer }] = await Promise.all([import('../control/cmd/context.js'), import('../lab/mesh/connect.js')]);
  registerControlPlaneDialer(labDialer);
  return command;
}

let explainerRef: Promise<Explainer> | undefined;
const explainer = (): Promise<Explainer> => (explainerRef ??= import('../explain/explainer.js').then((m) => m.createExplainer()));

const commands: Record<string, () => Promise<Command>> = {
  // one line per component: name: async () => (await import('../component/cli')).someCommand,
  lab: async () => (await import('../lab/cli.js')).labCommand,
  // --lab: the lab lends the node proxy its pods as a workload source (lab/node-source.ts)
  'node-proxy': async () => (await import('../node-proxy/cli.js')).nodeProxyCommand(async () => (await import('../lab/node-source.js')).labNodes),
  doctor: async () => (await import('../node-proxy/doctor/cli.js')).doctorCommand,
  ca: async () => (await import('../control/ca/cli.js')).caCommand,
  xds: async () => (await import('../control/xds/cli.js')).xdsCommand,
  // GET /v1/explain runs explain/ (the proxies' own code, above control/): lent to the control plane, loaded on first use
  control: async () =>
    (await import('../control/cli.js')).controlCommandWith({
      explain: async (snapshot, request) => (await explainer())(snapshot, request),
    }),
  apply: async () => withLabDialer(import('../control/cli.js').then((m) => m.applyCommand)),
  get: async () => withLabDialer(import('../control/cli.js').then((m) => m.getCommand)),
  delete: async () => withLabDialer(import('../control/cli.js').then((m) => m.deleteCommand)),
  namespace: async () => withLabDialer(import('../control/cli.js').then((m) => m.namespaceCommand)),
  // the lab lends its waypoints' and node proxies' admin endpoints (inside their netns)
  'proxy-config': async () => withLabDialer(import('../control/envoy/cli.js').then((m) => m.proxyConfigCommandWith(() => import('../lab/admin.js')))),
  'node-config': async () => (await import('../node-proxy/admin/cli.js')).nodeConfigCommand(() => import('../lab/admin.js')),
  waypoint: async () => withLabDialer(import('../waypoint/cli.js').then((m) => m.waypointCommand)),
  version: async () => withLabDialer(import('../control/cmd/version.js').then((m) => m.versionCommand)),
  analyze: async () => withLabDialer(import('../control/cmd/analyze.js').then((m) => m.analyzeCommand)),
  'proxy-status': async () => withLabDialer(import('../control/envoy/cli.js').then((m) => m.proxyStatusCommand)),
  explain: async () => withLabDialer(import('../explain/cli.js').then((m) => m.explainCommand)),
  dashboard: async () => withLabDialer(import('../control/ui/cli.js').then((m) => m.dashboardCommand)),
  completion: async () => completionCommand,
  install: async () => (await import('../helm/install/cli.js')).installCommand,
  vm: async () => (await import('../vm/cli.js')).vmCommand,
  'cni-install': async () => (await import('../helm/install/cni-installer.js')).cniInstallCommand,
};

function usage(): string {
  return topLevelHelp(Object.keys(commands));
}

/** `nodemesh completion bash|zsh`, and `nodemesh __complete WORDS… -- CURRENT` that its script calls. */
const completionCommand: Command = {
  name: 'completion',
  summary: CATALOG.completion!.summary,
  async run(argv) {
    const shell = argv[0];
    if (!shell || shell === '--help' || shell === '-h') {
      process.stdout.write(
        'usage: nodemesh completion bash|zsh\n\n  bash: source <(nodemesh completion bash)   (or save it under /etc/bash_completion.d/nodemesh)\n  zsh:  source <(nodemesh completion zsh)\n',
      );
      return shell ? 0 : 2;
    }
    try {
      process.stdout.write(completionScript(shell));
    } catch (err) {
      throw new CliError(`completion: ${(err as Error).message}`, 2);
    }
    return 0;
  },
};

function complete(argv: string[]): number {
  const dash = argv.lastIndexOf('--');
  const before = dash < 0 ? argv : argv.slice(0, dash);
  const current = dash < 0 ? '' : (argv[dash + 1] ?? '');
  const out = completions(Object.keys(commands), before, current);
  if (out.length) process.stdout.write(out.join('\n') + '\n');
  return 0;
}

/**
 * The global `--log-format json|text` flag, accepted anywhere on the line (before or after the
 * command): removed from argv and handed to every logger — and to the processes a command starts
 * — through NODEMESH_LOG_FORMAT.
 */
function takeLogFormat(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return [...out, ...argv.slice(i)];
    if (a === '--log-format' || a.startsWith('--log-format=')) {
      const value = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (value !== 'json' && value !== 'text')
        throw new CliError(`--log-format must be json or text, got ${value === undefined ? 'nothing' : `'${value}'`}`, 2);
      process.env.NODEMESH_LOG_FORMAT = value;
      continue;
    }
    out.push(a);
  }
  return out;
}

async function main(all: string[]): Promise<number> {
  const argv = takeLogFormat(all);
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return 0;
  }
  if (name === '--version') return (await commands.version!()).run(['--client']);
  if (name === '__complete') return complete(rest);
  const load = commands[name];
  if (!load) {
    process.stderr.write(`nodemesh: unknown command '${name}'; run 'nodemesh --help' for the list\n`);
    return 2;
  }
  if (process.env.NODEMESH_CPU_PROFILE) (await import('../common/cpu-profile.js')).startCpuProfile(process.env.NODEMESH_CPU_PROFILE, name);
  const command = await load();
  try {
    return await command.run(rest);
  } catch (err) {
    // A component that called util.parseArgs itself: the same plain usage error as everywhere.
    throw usageError(rest[0] && CATALOG[name]?.subcommands?.includes(rest[0]) ? `${name} ${rest[0]}` : name, err) ?? err;
  }
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
