// NODEMESH_CPU_PROFILE=DIR: the process records a V8 CPU profile from start to exit and writes it
// to DIR/<command>-<pid>.cpuprofile (open it in Chrome DevTools or speedscope). Node 20 refuses
// --cpu-prof in NODE_OPTIONS, so processes started by others (the lab's node proxies under the
// benchmark) are profiled this way. The in-process inspector session answers synchronously, so
// the profile is complete when the 'exit' handler returns.
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

export function startCpuProfile(dir: string, name: string): void {
  mkdirSync(dir, { recursive: true });
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 500 });
  session.post('Profiler.start');
  process.once('exit', () => {
    session.post('Profiler.stop', (err, res) => {
      if (!err) writeFileSync(join(dir, `${name}-${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  });
}
