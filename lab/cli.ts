// `nodemesh lab …`: up, down, status, exec, app. See lab/README.md.
import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CliError, usageError, type Command } from '../cli/command';
import { labDown } from './down';
import { labUp } from './up';
import { runApp, APP_USAGE } from './app/main';
import { signalNumber, spawnInLab } from './spawn';
import { isSameProcess } from './sys';
import { checkLabName, DEFAULT_LAB, labStateDir, LabStateError, loadLabState, tryLoadLabState } from './state';
import { describeTopology, processStatus } from './status';
import { formatTable } from '../common/table';
import { processHealth } from './mesh/health';
import { demoTraffic, meshDown, meshUp, readMeshInfo } from './mesh/up';
import { assignRoles, type DemoRole } from './mesh/demo';
import type { EdgeSummary } from './mesh/report';
import { runLabController } from './waypoints/run';
import { CONTROLLER_PROCESS } from './waypoints/launch';
import { readSupervisor } from './supervisor';
import { labTimeout } from './time-scale';
import { describeWaypoints, waypointRows } from './waypoints/status';

const USAGE = `usage: nodemesh lab <subcommand> [--lab NAME] …
  up     [--nodes N] [--pods-per-node M] [--no-mesh] [--no-demo]
                                           build the lab (default 2 nodes x 3 pods), start the control
                                           plane and a node proxy per node, run the demo app through the
                                           mesh and print what happened on each edge
  down                                     stop the mesh (node proxies unenrol first) and remove
                                           everything the lab made (safe to run twice)
  status [--json]                          nodes, pods, addresses, cgroups, processes and their health
  exec   [--detach --name NAME] <pod|node|control> -- <command…>
                                           run a command inside a pod's netns and cgroup
  app    http|echo|client …                the sample app (see 'nodemesh lab app --help')
  controller                               the lab controller (lab up starts it): a pod and a
                                           'nodemesh waypoint run' per waypoint Gateway; restarts
                                           the control plane and node proxies when they die
                                           (back-off 0.5 s doubling to 30 s; RESTARTS in status)
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
    throw usageError('lab', e) ?? new CliError(`${(e as Error).message}\n${USAGE}`, 2);
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
  const { values } = parse(argv, {
    nodes: { type: 'string' },
    'pods-per-node': { type: 'string' },
    'no-mesh': { type: 'boolean' },
    'no-demo': { type: 'boolean' },
  });
  if (values.help) return (process.stdout.write(USAGE + '\n'), 0);
  needRoot();
  const lab = labName(values.lab);
  const shape = { lab, nodes: intOpt(values.nodes, 2, '--nodes'), podsPerNode: intOpt(values['pods-per-node'], 3, '--pods-per-node') };
  const mesh = !values['no-mesh'];
  const demo = !values['no-demo'];
  const say = (m: string): void => err(`[lab ${lab}] ${m}`);
  if (demo && shape.nodes * shape.podsPerNode < 4) {
    throw new CliError(`the demo needs 4 pods (frontend, backend, tcp-echo, client): use --nodes 2 --pods-per-node 2 or more, or --no-demo`, 2);
  }
  // A lab that is up with another mesh setting (or whose mesh died) is rebuilt whole.
  const before = readMeshInfo(lab);
  const procs = tryLoadLabState(lab)?.processes ?? [];
  const alive = (name: string): number => procs.filter((p) => p.name === name && isSameProcess(p.pid, p.startTime)).length;
  const running = alive('control-plane') === 1 && alive('node-proxy') === shape.nodes && alive(CONTROLLER_PROCESS) === 1; // else rebuilt: a dead part would spoil the demo
  if (before && (before.mesh !== mesh || before.demo !== demo || (mesh && !running))) {
    say('the lab runs another mesh setup; rebuilding it');
    const old = tryLoadLabState(lab);
    if (old) await meshDown(old, say);
    await labDown(lab, say);
  }
  let result;
  try {
    result = await labUp(shape, say);
  } catch (e) {
    if (e instanceof RangeError || e instanceof LabStateError) throw new CliError(e.message, 2);
    throw e;
  }
  process.stdout.write(describeTopology(result.state));
  say(result.reused ? 'network already up' : `network up in ${result.ms} ms`);
  let m: { roles?: DemoRole[]; edges?: EdgeSummary[]; table?: string; l7?: { text: string; ok: boolean } };
  try {
    if (result.reused && before) {
      say('the mesh is already running; leaving it as it is');
      const roles = demo ? assignRoles(result.state) : undefined;
      m = roles ? { roles, ...(await demoTraffic(result.state, roles, mesh, undefined, say)) } : {};
    } else {
      m = await meshUp(result.state, { mesh, demo }, say);
    }
  } catch (e) {
    throw new CliError(
      `${(e as Error).message}\nthe lab stays up for inspection: 'nodemesh lab status --lab ${lab}', logs in ${join(labStateDir(lab), 'logs')}; 'nodemesh lab down --lab ${lab}' removes it`,
    );
  }
  if (m.table) process.stdout.write(`\ndemo traffic (${mesh ? 'through the mesh' : 'no mesh'}):\n${m.table}`);
  if (m.l7) process.stdout.write(`\n${m.l7.text}`);
  const labFlag = lab === DEFAULT_LAB ? '' : ` --lab ${lab}`;
  const frontend = m.roles?.find((r) => r.role === 'frontend');
  const firstPod = frontend?.pod.name ?? result.state.pods[0]?.name ?? 'pod1-1';
  const curlTarget = mesh ? '10.96.0.10/' : `${frontend?.pod.ip ?? '10.200.1.2'}:8080/`;
  const pod2 = result.state.pods.find((p) => p.node !== result.state.pods[0]?.node) ?? result.state.pods[1];
  // Each hint is a shell line that works when pasted as printed: the explanation is a comment.
  const next = demo
    ? [
        [`nodemesh lab status${labFlag}`, 'processes and their health'],
        [`nodemesh lab exec${labFlag} ${firstPod} -- curl -s ${curlTarget}`, 'a request from inside a pod'],
        ...(mesh
          ? [
              [`nodemesh get workloads -A${labFlag}`, "the mesh's view (the lab's control plane)"],
              [`nodemesh get authorizationpolicies -n demo${labFlag}`, "the demo's policies"],
              [`nodemesh waypoint list -A${labFlag}`, 'the waypoints, where they run, readiness'],
              [`tail -n 20 ${join(labStateDir(lab), 'logs')}/node2-node-proxy.log`, "access log of node2's proxy"],
            ]
          : []),
      ]
    : [
        [`nodemesh lab status${labFlag}`, 'processes and their health'],
        ...(mesh ? [[`nodemesh namespace enroll default${labFlag}`, "put every pod in the mesh (they are Workloads in 'default')"]] : []),
        [`nodemesh lab exec${labFlag} --detach --name echo ${pod2?.name ?? 'pod2-1'} -- nodemesh lab app echo --port 9000`, 'a TCP echo server in a pod'],
        [
          `nodemesh lab exec${labFlag} ${result.state.pods[0]?.name ?? 'pod1-1'} -- nodemesh lab app client --target ${pod2?.ip ?? '10.200.2.2'}:9000 --size 1M`,
          '1 MiB to it and back',
        ],
      ];
  next.push([`nodemesh lab down${labFlag}`, 'remove everything']);
  process.stdout.write(`\nthe lab stays up; next:\n${formatHints(next)}`);
  return (m.edges && m.edges.some((e) => !e.expected)) || m.l7?.ok === false ? 1 : 0;
}

async function down(argv: string[]): Promise<number> {
  const { values } = parse(argv);
  if (values.help) return (process.stdout.write(USAGE + '\n'), 0);
  needRoot();
  const lab = labName(values.lab);
  const t0 = Date.now();
  const say = (m: string): void => err(`[lab ${lab}] ${m}`);
  let state;
  try {
    state = tryLoadLabState(lab);
  } catch {
    state = undefined; // unreadable state: labDown cleans by name
  }
  if (state) await meshDown(state, say);
  const r = await labDown(lab, say);
  const nothing = r.netns.length === 0 && r.cgroups === 0 && r.pins.length === 0 && r.records.length === 0 && !r.stateRemoved;
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
  const supervised = readSupervisor(lab);
  const restartsOf = (p: { name: string; place: string }) => supervised.find((r) => r.name === p.name && r.place === p.place);
  const procs = await Promise.all(
    processStatus(state).map(async (p) => ({ ...p, health: await processHealth(state, p, p.alive), restarts: restartsOf(p)?.restarts })),
  );
  if (values.json) {
    process.stdout.write(
      JSON.stringify({ ...state, processes: procs, supervisor: supervised, mesh: readMeshInfo(lab), waypoints: await waypointRows(state) }, null, 2) + '\n',
    );
  } else {
    const table = procs.length
      ? formatTable(
          ['PROCESS', 'WHERE', 'PID', 'STATE', 'RESTARTS', 'HEALTH', 'COMMAND'],
          procs.map((p) => [
            p.name,
            p.place,
            String(p.pid),
            p.alive ? 'running' : 'gone',
            p.restarts === undefined ? '-' : String(p.restarts),
            p.health,
            p.argv.map((a) => a.replace(/^.*\/dist\//, 'dist/')).join(' '),
          ]),
        )
      : 'no recorded processes\n';
    process.stdout.write(describeTopology(state) + '\n' + table + (await describeWaypoints(state)));
  }
  return procs.some((p) => !p.alive || p.health.startsWith('not')) ? 1 : 0;
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
    } finally {
      closeSync(fd);
    }
    const early = await exitWithin(child, labTimeout(DETACH_SETTLE_MS));
    if (early) {
      const tail = logTail(log, 5);
      const how = early.error
        ? `could not start: ${early.error.message}`
        : `exited at once (${early.signal ? `signal ${early.signal}` : `code ${early.code}`})`;
      if (early.error || early.code !== 0) {
        throw new CliError(`'${command.join(' ')}' in ${place} ${how}${tail ? `; its output (${log}):\n${tail}` : `; no output in ${log}`}`);
      }
      err(`[lab ${lab}] '${name}' in ${place} ran and ${how}; output in ${log}`);
      return 0;
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

/** Hint lines: the command, then its explanation as a shell comment in one aligned column. */
export function formatHints(hints: string[][]): string {
  const width = Math.max(...hints.map(([cmd]) => (cmd ?? '').length));
  return hints.map(([cmd = '', why]) => `  ${why ? `${cmd.padEnd(width)}   # ${why}` : cmd}\n`).join('');
}

/**
 * How long a detached command must stay up before `lab exec --detach` reports it started; scaled by
 * NODEMESH_SPEED_FACTOR (lab/time-scale.ts): in a 5.10 VM under TCG a command that does not exist
 * failed only after 400 ms (entering the pod's netns first), and was reported as started.
 */
const DETACH_SETTLE_MS = 400;

interface EarlyExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** Resolves with how the child ended if it ends (or fails to spawn) within `ms`, else undefined. */
function exitWithin(child: ChildProcess, ms: number): Promise<EarlyExit | undefined> {
  return new Promise((resolve) => {
    const done = (v: EarlyExit | undefined): void => {
      clearTimeout(timer);
      child.off('exit', onExit);
      child.off('error', onError);
      resolve(v);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => done({ code, signal });
    const onError = (error: Error): void => done({ code: null, signal: null, error });
    const timer = setTimeout(() => done(undefined), ms);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

/** The last `lines` non-empty lines of a log file ('' when it is missing or empty). */
function logTail(path: string, lines: number): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return '';
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(-lines)
    .map((l) => `  ${l}`)
    .join('\n');
}

async function app(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h') return (process.stdout.write(APP_USAGE + '\n'), argv.length ? 0 : 2);
  return runApp(argv);
}

async function controller(argv: string[]): Promise<number> {
  const { values } = parse(argv);
  if (values.help) return (process.stdout.write(USAGE + '\n'), 0);
  needRoot();
  const lab = labName(values.lab);
  return runLabController(lab);
}

const subcommands: Record<string, (argv: string[]) => Promise<number>> = { up, down, status, exec, app, controller };

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
