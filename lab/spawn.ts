// Running processes inside the lab: in a pod's (or node's, or the control host's) netns AND cgroup.
// `nsenter --net` switches the netns; a tiny sh moves itself into the cgroup and then execs the
// command, so the pid the caller sees is the command's pid from its first instruction on.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { constants } from 'node:os';
import { forgetLabProcess, loadLabState, recordLabProcess, findPlace, type LabTopology, type LabPlace } from './state';
import { procStartTime } from './sys';

export interface SpawnInLabOptions {
  stdio?: StdioOptions;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  detached?: boolean;
  /** Record the process in the lab state under this name (shown by `lab status`, killed by `lab down`). */
  record?: string;
}

// $0 is the cgroup.procs path, "$@" the command: no user input is ever parsed by the shell.
const ENTER_CGROUP = 'echo $$ > "$0" && exec "$@"';

/** The argv that runs `command` inside a place of the lab. */
export function labExecArgv(place: LabPlace, command: string[]): string[] {
  return ['nsenter', `--net=${place.netnsPath}`, '--', 'sh', '-c', ENTER_CGROUP, `${place.cgroup}/cgroup.procs`, ...command];
}

/**
 * Spawns `command` in a pod, node or the control host of a lab. The child's env gets NODEMESH_LAB,
 * NODEMESH_PLACE and (for pods and nodes) NODEMESH_POD / NODEMESH_NODE.
 */
export function spawnInLab(lab: string | LabTopology, placeName: string, command: string[], opts: SpawnInLabOptions = {}): ChildProcess {
  if (command.length === 0) throw new Error('spawnInLab: no command given');
  const state = typeof lab === 'string' ? loadLabState(lab) : lab;
  const place = findPlace(state, placeName);
  const argv = labExecArgv(place, command);
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env, NODEMESH_LAB: state.lab, NODEMESH_PLACE: place.name };
  env.PATH = withStandardPath(env.PATH);
  if (place.kind === 'pod') env.NODEMESH_POD = place.name;
  if (place.node) env.NODEMESH_NODE = place.node;
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: opts.stdio ?? 'pipe', env, cwd: opts.cwd, detached: opts.detached });
  const pid = child.pid;
  if (opts.record && pid !== undefined) {
    const startTime = procStartTime(pid);
    if (startTime !== undefined) {
      recordLabProcess(state.lab, { name: opts.record, place: place.name, pid, startTime, argv: command, startedAt: new Date().toISOString() });
      child.once('exit', () => forgetLabProcess(state.lab, pid));
    }
  }
  return child;
}

/** The standard bin directories, where the set-up step puts the `nodemesh` command among others. */
const STANDARD_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/**
 * `path` with the standard bin directories appended where missing, so that a command typed in
 * `lab exec POD -- …` (`nodemesh`, `curl`) resolves in a pod as it does in a login shell, also
 * when the caller's environment has a minimal PATH (a service, `env -i`).
 */
export function withStandardPath(path: string | undefined): string {
  const have = (path ?? '').split(':').filter((d) => d !== '');
  return [...have, ...STANDARD_PATH.filter((d) => !have.includes(d))].join(':');
}

/** Shorthand for a pod. */
export function spawnInPod(lab: string | LabTopology, pod: string, command: string[], opts: SpawnInLabOptions = {}): ChildProcess {
  return spawnInLab(lab, pod, command, opts);
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command in a place of the lab to completion (bounded by timeoutMs) and collects its output. */
export function runInLab(lab: string | LabTopology, placeName: string, command: string[], timeoutMs = 30_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawnInLab(lab, placeName, command, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`'${command.join(' ')}' in ${placeName} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', (err) => (clearTimeout(timer), reject(err)));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128 + (signal ? signalNumber(signal) : 0), stdout, stderr });
    });
  });
}

export function signalNumber(sig: NodeJS.Signals): number {
  return constants.signals[sig] ?? 0;
}
