// `nodemesh lab …`: up, down, status, exec, app. See DESIGN.md "The lab".
import { mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CliError, type Command } from '../cli/command';
import { labDown } from './down';
import { labUp } from './up';
import { runApp, APP_USAGE } from './app/main';
import { signalNumber, spawnInLab } from './spawn';
import { checkLabName, DEFAULT_LAB, labStateDir, LabStateError, loadLabState } from './state';
import { describeProcesses, describeTopology, processStatus } from './status';

const USAGE = `usage: nodemesh lab <subcommand> [--lab NAME] …
  up     [--nodes N] [--pods-per-node M]   build the lab (default 2 nodes x 2 pods); cleans a stale one first
  down                                     remove everything the lab made (safe to run twice)
  status [--json]                          nodes, pods, addresses, cgroups, what runs where
  exec   [--detach --name NAME] <pod|node|control> -- <command…>
                                           run a command inside a pod's netns and cgroup
  app    http|echo|client …                the sample app (see 'nodemesh lab app --help')
  --lab NAME   which lab (a-z0-9, 1-8 chars; default '${DEFAULT_LAB}'); several labs can exist at once`;

const err = (msg: string): void => void process.stderr.write(msg + '\n');

function needRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new CliError('the lab creates network namespaces and cgroups: run it as root (sudo)');
  }
}

interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

function parse(argv: string[], extra: Record<string, { type: 'string' | 'boolean' }> = {}): Parsed {
  try {
    return parseArgs({
      args: argv,
      options: { lab: { type: 'string', default: DEFAULT_LAB }, help: { type: 'boolean', short: 'h' }, ...extra },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new CliError(`${(e as Error).message}\n${USAGE}`, 2);
  }
}

function labName(v: unknown): string {
  try {
    return checkLabName(String(v));
  } catch (e) {
    throw new CliError((e as Error).message, 2);
  }
}

function intOpt(v: unknown, fallback: number, flag: string): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new CliError(`${flag} must be a whole number, got '${String(v)}'`, 2);
  return n;
}

async function up(argv: string[]): Promise<number> {
  const { values } = parse(argv, { nodes: { type: 'string' }, 'pods-per-node': { type: 'string' } });
  if (values.help) return (process.stdout.write(USAGE + '\n'), 0);
  needRoot();
  const lab = labName(values.lab);
  const shape = { lab, nodes: intOpt(values.nodes, 2, '--nodes'), podsPerNode: intOpt(values['pods-per-node'], 2, '--pods-per-node') };
  let result;
  try {
    result = await labUp(shape, (m) => err(`[lab ${lab}] ${m}`));
  } catch (e) {
    if (e instanceof RangeError || e instanceof LabStateError) throw new CliError(e.message, 2);
    throw e;
  }
  process.stdout.write(describeTopology(result.state));
  err(`[lab ${lab}] ${result.reused ? 'already up' : `up in ${result.ms} ms`}; try: nodemesh lab exec --lab ${lab} ${result.state.pods[0]?.name ?? 'pod1-1'} -- ip -o addr`);
  return 0;
}

async function down(argv: string[]): Promise<number> {
  const { values } = parse(argv);
  if (values.help) return (process.stdout.write(USAGE + '\n'), 0);
  needRoot();
  const lab = labName(values.lab);
  const t0 = Date.now();
  const r = await labDown(lab, (m) => err(`[lab ${lab}] ${m}`));
  const nothing = r.netns.length === 0 && r.cgroups === 0 && r.pins.length === 0 && !r.stateRemoved;
  process.stdout.write(
    nothing
      ? `lab '${lab}': nothing to remove\n`
      : `lab '${lab}' removed in ${Date.now() - t0} ms: ${r.killed} process(es), ${r.netns.length} netns, ${r.cgroups} cgroup(s), ${r.pins.length} bpffs dir(s)\n`,
  );
  return 0;
}

async function status(argv: string[]): Promise<number> {
  const { values } = parse(argv, { json: { type: 'boolean' } });
  if (values.help) return (process.stdout.write(USAGE + '\n'), 0);
  const lab = labName(values.lab);
  let state;
  try {
    state = loadLabState(lab);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  if (values.json) {
    process.stdout.write(JSON.stringify({ ...state, processes: processStatus(state) }, null, 2) + '\n');
  } else {
    process.stdout.write(describeTopology(state) + '\n' + describeProcesses(state));
  }
  return 0;
}

async function exec(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const before = dash < 0 ? argv : argv.slice(0, dash);
  const command = dash < 0 ? [] : argv.slice(dash + 1);
  const { values, positionals } = parse(before, { detach: { type: 'boolean' }, name: { type: 'string' } });
  if (values.help) return (process.stdout.write(USAGE + '\n'), 0);
  const place = positionals[0];
  if (!place || positionals.length > 1 || command.length === 0) {
    throw new CliError(`usage: nodemesh lab exec [--lab NAME] [--detach --name NAME] <pod|node|control> -- <command…>`, 2);
  }
  needRoot();
  const lab = labName(values.lab);
  let state;
  try {
    state = loadLabState(lab);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  if (values.detach) {
    const name = (values.name as string | undefined) ?? command[0]?.split('/').pop() ?? 'process';
    const logDir = join(labStateDir(lab), 'logs');
    mkdirSync(logDir, { recursive: true });
    const log = join(logDir, `${place}-${name}.log`);
    const fd = openSync(log, 'a');
    let child;
    try {
      child = spawnInLab(state, place, command, { stdio: ['ignore', fd, fd], detached: true, record: name });
    } catch (e) {
      throw new CliError((e as Error).message);
    }
    child.unref();
    process.stdout.write(`${child.pid}\n`);
    err(`[lab ${lab}] started '${name}' in ${place} (pid ${child.pid}), output in ${log}; 'lab status' shows it, 'lab down' stops it`);
    return 0;
  }
  let child;
  try {
    child = spawnInLab(state, place, command, { stdio: 'inherit', record: values.name as string | undefined });
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  const onTerm = forward('SIGTERM');
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', () => undefined); // the child gets Ctrl-C from the terminal itself
  return new Promise((resolve, reject) => {
    child.on('error', (e) => reject(new CliError(`could not run ${command[0]} in ${place}: ${e.message}`)));
    child.on('exit', (code, signal) => {
      process.off('SIGTERM', onTerm);
      resolve(code ?? 128 + (signal ? signalNumber(signal) : 0));
    });
  });
}

async function app(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h') return (process.stdout.write(APP_USAGE + '\n'), argv.length ? 0 : 2);
  return runApp(argv);
}

const subcommands: Record<string, (argv: string[]) => Promise<number>> = { up, down, status, exec, app };

export const labCommand: Command = {
  name: 'lab',
  summary: 'the netns lab: nodes, pods and the sample app as network namespaces and cgroups on this machine',
  async run(argv: string[]): Promise<number> {
    const [sub, ...rest] = argv;
    if (!sub || sub === '--help' || sub === '-h' || sub === 'help') {
      process.stdout.write(USAGE + '\n');
      return sub ? 0 : 2;
    }
    const fn = subcommands[sub];
    if (!fn) throw new CliError(`unknown lab subcommand '${sub}'\n${USAGE}`, 2);
    return fn(rest);
  },
};
