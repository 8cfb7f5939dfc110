// Starting and stopping the lab controller process (`nodemesh lab controller`) from `lab up` /
// `lab down`: it runs in the control host's netns and cgroup, recorded as `lab-controller`.
import { cliEntry } from '../../common/paths';
import { readLabProcesses, type LabTopology } from '../state';
import { isSameProcess, sleep } from '../sys';
import { launch, type Launched } from '../mesh/launch';
import { meshPaths } from '../mesh/paths';

export const CONTROLLER_PROCESS = 'lab-controller';

export async function startLabController(state: LabTopology): Promise<Launched> {
  const p = launch(
    state,
    'control',
    CONTROLLER_PROCESS,
    [process.execPath, cliEntry, 'lab', 'controller', '--lab', state.lab],
    meshPaths(state.lab).log('control', CONTROLLER_PROCESS),
    {
      NODEMESH_LOG_LEVEL: process.env.NODEMESH_LOG_LEVEL ?? 'info',
    },
  );
  // It has nothing to report until a Gateway appears; only make sure it did not die at once.
  const gone = await Promise.race([p.exited, sleep(300).then(() => undefined)]);
  if (gone !== undefined) throw new Error(`the lab controller exited at once (${gone}); see ${p.log}`);
  return p;
}

/** SIGTERM to the recorded controller(s); waits up to 5 s. The waypoints keep running. */
export async function stopLabController(lab: string): Promise<void> {
  const procs = readLabProcesses(lab).filter((p) => p.name === CONTROLLER_PROCESS && isSameProcess(p.pid, p.startTime));
  for (const p of procs) {
    try {
      process.kill(p.pid, 'SIGTERM');
    } catch {
      // gone meanwhile
    }
  }
  const deadline = Date.now() + 5000;
  while (procs.some((p) => isSameProcess(p.pid, p.startTime)) && Date.now() < deadline) await sleep(50);
  for (const p of procs) if (isSameProcess(p.pid, p.startTime)) process.kill(p.pid, 'SIGKILL');
}
