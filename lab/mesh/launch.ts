// Long-running mesh processes in the lab: started in a place's netns and cgroup, recorded (so
// `lab status` shows them and `lab down` stops them), output appended to the lab's logs dir.
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { spawnInLab } from '../spawn';
import type { LabTopology } from '../state';
import { sleep } from '../sys';
import { labTimeout } from '../time-scale';
import { netnsGet } from '../../native/netns-http';

export interface Launched {
  name: string;
  place: string;
  pid: number;
  log: string;
  /** Resolves with the exit code (or signal) when the process ends. */
  exited: Promise<string>;
}

export function launch(state: LabTopology, place: string, name: string, argv: string[], log: string, env: NodeJS.ProcessEnv = {}): Launched {
  mkdirSync(dirname(log), { recursive: true });
  const fd = openSync(log, 'a');
  let child;
  try {
    // The lab reads its mesh processes' logs (access lines, readiness) as JSON, whatever the caller's format.
    child = spawnInLab(state, place, argv, { stdio: ['ignore', fd, fd], detached: true, record: name, env: { ...env, NODEMESH_LOG_FORMAT: 'json' } });
  } finally {
    closeSync(fd);
  }
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${name} in ${place} (${argv[0]} not found?)`);
  const exited = new Promise<string>((resolve) => child.once('exit', (code, sig) => resolve(sig ?? `exit code ${code}`)));
  return { name, place, pid: child.pid, log, exited };
}

/**
 * Polls http(s)://host:port/path inside a netns until it answers 200. Fails early when the process
 * exits, and after timeoutMs with the last answer — both name the log to read.
 */
export async function waitReady(
  netnsPath: string,
  host: string,
  port: number,
  path: string,
  p: Launched,
  timeoutMs = 20_000,
  ca?: () => string | undefined,
): Promise<void> {
  const limit = labTimeout(timeoutMs);
  const deadline = Date.now() + limit;
  let last = 'no answer yet';
  let gone: string | undefined;
  void p.exited.then((how) => (gone = how));
  while (Date.now() < deadline) {
    if (gone !== undefined) throw new Error(`${p.name} in ${p.place} exited (${gone}) before it was ready; see ${p.log}`);
    try {
      // over TLS when `ca` is given: its roots may appear only once the process has started
      const roots = ca?.();
      if (ca && roots === undefined) throw new Error('no CA root yet');
      const r = await netnsGet(netnsPath, host, port, path, {}, 2000, roots);
      if (r.status === 200) return;
      last = `HTTP ${r.status}: ${r.body.slice(0, 200)}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(150);
  }
  throw new Error(`${p.name} in ${p.place} was not ready within ${limit} ms (http://${host}:${port}${path}: ${last}); see ${p.log}`);
}
