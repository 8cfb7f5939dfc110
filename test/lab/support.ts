// Helpers for lab-tier tests: start the sample app in a pod and wait until it listens, run the built
// CLI, and list what of a lab is still on the machine (so a test can assert that nothing is left).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { labStateDir, type LabTopology } from '../../lab/state';
import { spawnInLab } from '../../lab/spawn';
import { cgroup2Mount, listNetns, run } from '../../lab/sys';
import { scaled } from '../support/speed';

export const repoRoot = resolve(__dirname, '../..');

/** A built file under dist/ (the lab runs real processes, which need compiled JavaScript). */
export function dist(rel: string): string {
  const p = join(repoRoot, 'dist', rel);
  if (!existsSync(p)) throw new Error(`${p} is missing: build first with 'bash scripts/setup.sh'`);
  return p;
}

export interface Started {
  child: ChildProcess;
  listening: { address: string; port: number };
}

/** Starts the sample app (`http` or `echo`) in a place of the lab and waits for its "listening" line. */
export function startApp(lab: LabTopology, place: string, args: string[], record = args[0] ?? 'app'): Promise<Started> {
  const child = spawnInLab(lab, place, [process.execPath, dist('lab/app/main.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], record });
  return new Promise((resolvePromise, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(
      () => reject(new Error(`${args.join(' ')} in ${place} did not start within ${Math.round(scaled(10_000) / 1000)} s: ${err}`)),
      scaled(10_000),
    );
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        const line = JSON.parse(out.slice(0, nl)) as { listening: Started['listening'] };
        resolvePromise({ child, listening: line.listening });
      }
    });
    child.on('exit', (code) => (clearTimeout(timer), reject(new Error(`${args.join(' ')} in ${place} exited with ${code}: ${err}`))));
  });
}

/** Runs the built CLI (`node dist/cli/main.js …`) to completion. */
export function cli(args: string[], timeoutMs = scaled(60_000)): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [dist('cli/main.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => (child.kill('SIGKILL'), reject(new Error(`nodemesh ${args.join(' ')} timed out`))), timeoutMs);
    child.on('close', (code) => (clearTimeout(timer), resolvePromise({ code: code ?? -1, stdout, stderr })));
  });
}

/** Every object of the lab still on this machine, named; empty when the lab is fully gone. */
export async function leftovers(lab: string, pids: number[] = []): Promise<string[]> {
  const out: string[] = [];
  for (const n of listNetns()) if (n.startsWith(`nm-${lab}-`)) out.push(`netns ${n}`);
  const cg = join(cgroup2Mount(), `nm-${lab}`);
  if (existsSync(cg)) out.push(`cgroup ${cg}`);
  try {
    for (const d of readdirSync('/sys/fs/bpf/nodemesh')) if (d.startsWith(`${lab}-`)) out.push(`bpffs /sys/fs/bpf/nodemesh/${d}`);
  } catch {
    // no nodemesh bpffs dir at all
  }
  if (existsSync(labStateDir(lab))) out.push(`state ${labStateDir(lab)}`);
  // The lab's link names, in the root netns (the lab must never put anything there).
  const rootLinks = await run('ip', ['-o', 'link', 'show']);
  for (const l of rootLinks.split('\n')) {
    const name = /^\d+:\s+([^:@]+)/.exec(l)?.[1];
    if (name && /^nm-(ul|pods|control|node\d+|pod\d+-\d+)$/.test(name)) out.push(`root-netns link ${name}`);
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (!stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) out.push(`process ${pid}`);
    } catch {
      // gone, as it should be
    }
  }
  return out;
}
