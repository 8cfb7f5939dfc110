// Drives the demo's edges with the sample client inside the source pod (its netns and cgroup, so
// capture applies), one edge at a time, and collects what the destination node proxies logged
// about those connections.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../common/paths';
import type { ClientReport } from '../app/client';
import { LIMITS } from '../app/limits';
import { runInLab } from '../spawn';
import type { LabTopology } from '../state';
import { sleep } from '../sys';
import { labTimeout } from '../time-scale';
import type { DemoEdge } from './demo';
import { meshPaths } from './paths';
import { entriesFor, parseAccessLog, type AccessEntry, type EdgeObservation } from './report';

export const appMain = (): string => join(projectRoot, 'dist', 'lab', 'app', 'main.js');

export interface DriveOptions {
  connections: number;
  concurrency: number;
  size: number;
  timeoutMs: number;
  /** HTTP method (default GET). */
  method?: string;
}

/**
 * The demo's drive of one edge: 15 s on an ordinary machine, scaled by NODEMESH_SPEED_FACTOR (in a
 * starved TCG guest the client in a pod did not finish within the fixed 15 + 10 s, and lab up's
 * demo read those edges as failed).
 */
export function defaultDrive(env: NodeJS.ProcessEnv = process.env): DriveOptions {
  return { connections: 5, concurrency: 5, size: 2048, timeoutMs: labTimeout(15_000, env) };
}
export const DEFAULT_DRIVE: DriveOptions = defaultDrive();

/**
 * The sample client's argv for one run. The run's limit is kept within the client's own bound
 * (10 min): a limit scaled on a very slow machine (60 s x a speed factor of 20 in a starved VM)
 * made the client refuse to start, and every connection of the run count as refused.
 */
export function clientArgv(target: string, mode: 'http' | 'tcp', o: DriveOptions): string[] {
  const total = Math.min(o.timeoutMs, LIMITS.totalTimeoutMs);
  return [
    process.execPath,
    appMain(),
    'client',
    '--target',
    target,
    '--mode',
    mode,
    '--connections',
    String(o.connections),
    '--concurrency',
    String(o.concurrency),
    '--size',
    String(o.size),
    '--timeout-ms',
    String(total),
    '--request-timeout-ms',
    String(Math.min(total, labTimeout(5000))), // a 64 MiB echo in 5 s, longer on a slow machine
    ...(o.method ? ['--method', o.method] : []),
  ];
}

/** Runs the sample client in a pod; the report, or the reason there is none. */
export async function runClientIn(
  state: LabTopology,
  pod: string,
  target: string,
  mode: 'http' | 'tcp',
  o: DriveOptions,
): Promise<ClientReport | { error: string }> {
  const argv = clientArgv(target, mode, o);
  try {
    // the run's limit, plus the client process's start (10 s, scaled: a cold node start in a TCG guest)
    const r = await runInLab(state, pod, argv, Math.min(o.timeoutMs, LIMITS.totalTimeoutMs) + labTimeout(10_000));
    const line = r.stdout.trim().split('\n').pop() ?? '';
    if (!line.startsWith('{')) return { error: `client exited ${r.code}: ${r.stderr.trim().split('\n').pop() ?? ''}` };
    return JSON.parse(line) as ClientReport;
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** Reads what a log file gained since `from` (a byte offset). */
export function readFrom(file: string, from: number): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = statSync(file).size;
    if (size <= from) return '';
    const buf = Buffer.alloc(size - from);
    readSync(fd, buf, 0, buf.length, from);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

export function logSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** Node proxy log files, by node. */
export function proxyLogs(state: LabTopology): Map<string, string> {
  const p = meshPaths(state.lab);
  return new Map(state.nodes.map((n) => [n.name, p.log(n.name, 'node-proxy')]));
}

/** Access-log entries all node proxies wrote since `marks` (offsets from proxyLogMarks). */
export function accessEntriesSince(state: LabTopology, marks: Map<string, number>): AccessEntry[] {
  const out: AccessEntry[] = [];
  for (const [node, file] of proxyLogs(state)) out.push(...parseAccessLog(readFrom(file, marks.get(node) ?? 0)));
  return out;
}

export function proxyLogMarks(state: LabTopology): Map<string, number> {
  return new Map([...proxyLogs(state)].map(([node, file]) => [node, logSize(file)]));
}

/** The destination port of the connection the edge makes at the destination pod. */
function destinationPort(edge: DemoEdge): number {
  return edge.to.port ?? 0;
}

/**
 * The destination proxies' entries for an edge: from the source pod (or the waypoint it goes through) to any pod serving
 * it, opened since `sinceMs`. A waypoint pools its upstream connections, so one opened for an earlier edge may close (and
 * be logged) while a later edge runs: it is not this edge's (it made `tcp-echo -> backend`, refused by the waypoint with
 * 403, read `allowed 5 (via waypoint)` now and then).
 */
export function edgeEntries(all: AccessEntry[], edge: DemoEdge, sinceMs = 0): AccessEntry[] {
  const src = edge.waypoint?.ip ?? edge.from.pod.ip;
  return (edge.toPods ?? [edge.to])
    .flatMap((to) => entriesFor(all, src, to.pod.ip, destinationPort(edge)))
    .filter((e) => e.openedAtMs === undefined || e.openedAtMs >= sinceMs - CLOCK_SLACK_MS);
}

/** Log times are milliseconds, durations sub-millisecond: a connection opened just after the mark may round to before it. */
const CLOCK_SLACK_MS = 5;

export async function driveEdge(state: LabTopology, edge: DemoEdge, o: DriveOptions = DEFAULT_DRIVE, mesh = true): Promise<EdgeObservation> {
  const marks = proxyLogMarks(state);
  const since = Date.now();
  const client = await runClientIn(state, edge.from.pod.name, edge.target, edge.mode, o);
  let entries: AccessEntry[] = [];
  // Access-log lines are written (batched) when a connection closes: give the proxies a moment, longer on a slow machine.
  const deadline = Date.now() + (mesh ? labTimeout(2000) : 0);
  for (;;) {
    entries = edgeEntries(accessEntriesSince(state, marks), edge, since);
    // an edge through the waypoint is decided by the waypoint's HTTP answers (summarizeEdge): don't wait for log lines
    const answeredByWaypoint = edge.waypoint && 'statusCodes' in client && Object.keys(client.statusCodes).length > 0;
    if (entries.length >= o.connections || Date.now() >= deadline || answeredByWaypoint) break;
    await sleep(100);
  }
  return { edge, client, entries, mesh };
}
