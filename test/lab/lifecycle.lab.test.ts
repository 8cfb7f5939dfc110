// The lab's life cycle: `up` twice and `down` twice are safe; an interrupted or crashed `up` is cleaned
// by the next one; `down` leaves no netns, link, cgroup, pin, state or process behind — also when the
// test that made the lab fails midway.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { privilegedDescribe } from '../support/privileged';
import { labDown } from '../../lab/down';
import { labUp } from '../../lab/up';
import { planLab } from '../../lab/topology';
import { runInLab } from '../../lab/spawn';
import { readLabTopology, writeLabTopology } from '../../lab/state';
import { cgroup2Mount, ensureBpffs, isSameProcess, procStartTime, run, sleep } from '../../lab/sys';
import { cli, dist, leftovers, repoRoot, startApp } from './support';

const LABS = ['nmt2', 'nmt3', 'nmt4'];

/** Starts `sleep 600` detached (not a child we wait for) and returns its pid. */
function strayProcess(argv: string[]): number {
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: 'ignore', detached: true });
  child.unref();
  if (!child.pid) throw new Error(`could not start ${argv.join(' ')}`);
  return child.pid;
}

async function waitAlive(pid: number): Promise<void> {
  for (let i = 0; i < 50 && !procStartTime(pid); i++) await sleep(20);
}

privilegedDescribe('lab', 'lab life cycle and clean-up', () => {
  const strays: number[] = [];
  afterAll(async () => {
    for (const lab of LABS) await labDown(lab);
    for (const pid of strays) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const lab of LABS) expect(await leftovers(lab, strays)).toEqual([]);
  });

  it('up twice keeps the lab and its processes; another shape replaces it; down twice is safe', async () => {
    const first = await labUp({ lab: 'nmt2', nodes: 2, podsPerNode: 2 });
    expect(first.reused).toBe(false);
    const app = await startApp(first.state, 'pod1-1', ['echo', '--port', '9000'], 'echo');
    const appPid = app.child.pid as number;
    // A process that entered a lab netns by other means (plain `ip netns exec`, no lab cgroup).
    const stray = strayProcess(['ip', 'netns', 'exec', 'nm-nmt2-pod2-2', 'sleep', '600']);
    strays.push(stray);
    await waitAlive(stray);

    const again = await labUp({ lab: 'nmt2', nodes: 2, podsPerNode: 2 });
    expect(again.reused).toBe(true);
    expect(again.state.createdAt).toBe(first.state.createdAt);
    expect(procStartTime(appPid)).toBeDefined();

    const reshaped = await labUp({ lab: 'nmt2', nodes: 1, podsPerNode: 3 });
    expect(reshaped.reused).toBe(false);
    expect(reshaped.cleanedStale).toBe(true);
    expect(reshaped.state.pods.map((p) => p.name)).toEqual(['pod1-1', 'pod1-2', 'pod1-3']);
    expect(await leftovers('nmt2', [appPid, stray]).then((l) => l.filter((x) => x.startsWith('process')))).toEqual([]);
    const inPod = await runInLab(reshaped.state, 'pod1-3', ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']);
    expect(inPod.stdout).toContain('10.200.1.4/24');

    const down1 = await cli(['lab', 'down', '--lab', 'nmt2']);
    expect(down1.code).toBe(0);
    expect(down1.stdout).toMatch(/removed in \d+ ms: \d+ process\(es\), 6 netns, 6 cgroup\(s\), 1 bpffs dir/);
    const down2 = await cli(['lab', 'down', '--lab', 'nmt2']);
    expect(down2.code).toBe(0);
    expect(down2.stdout).toContain("lab 'nmt2': nothing to remove");
    expect(await leftovers('nmt2', [appPid, stray])).toEqual([]);
  });

  it('up cleans what a crashed up left behind: stale netns, cgroups with processes, pins, a half-written state', async () => {
    // What a crash midway could leave: a state in phase "creating", some netns (one of another shape),
    // a cgroup with a live process, a process in a stale netns, a bpffs dir.
    writeLabTopology(planLab({ lab: 'nmt3', nodes: 3, podsPerNode: 3 }, cgroup2Mount()));
    await run('ip', ['netns', 'add', 'nm-nmt3-node1']);
    await run('ip', ['netns', 'add', 'nm-nmt3-pod7-7']);
    await run('ip', ['-n', 'nm-nmt3-node1', 'link', 'add', 'nm-pods', 'type', 'bridge']);
    const cg = join(cgroup2Mount(), 'nm-nmt3', 'pod7-7');
    mkdirSync(cg, { recursive: true });
    const inCgroup = strayProcess(['sleep', '600']);
    strays.push(inCgroup);
    await waitAlive(inCgroup);
    writeFileSync(join(cg, 'cgroup.procs'), String(inCgroup));
    const inNetns = strayProcess(['ip', 'netns', 'exec', 'nm-nmt3-pod7-7', 'sleep', '600']);
    strays.push(inNetns);
    await waitAlive(inNetns);
    await ensureBpffs();
    mkdirSync('/sys/fs/bpf/nodemesh/nmt3-node9', { recursive: true });

    const up = await labUp({ lab: 'nmt3', nodes: 2, podsPerNode: 1 });
    expect(up.cleanedStale).toBe(true);
    const left = await leftovers('nmt3', [inCgroup, inNetns]);
    expect(left.filter((l) => /pod7-7|node9|process/.test(l))).toEqual([]);
    expect(left).toContain('netns nm-nmt3-node1'); // made anew by this up
    const r = await runInLab(up.state, 'pod2-1', ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']);
    expect(r.stdout).toContain('10.200.2.2/24');
  });

  it('an up killed midway (SIGKILL) is cleaned by the next up, which then works', async () => {
    await labDown('nmt3');
    const child = spawn(process.execPath, [dist('cli/main.js'), 'lab', 'up', '--lab', 'nmt3', '--nodes', '3', '--pods-per-node', '3'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    // Killed once it reports step 3 of 6: namespaces and the underlay exist, nodes are half made.
    await new Promise<void>((resolve) => {
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        err += d;
        if (err.includes('[3/6]')) resolve();
      });
      child.once('close', () => resolve());
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('close', resolve));
    const killedAt = readLabTopology('nmt3');
    expect(killedAt).toBeDefined();
    const again = await cli(['lab', 'up', '--lab', 'nmt3', '--nodes', '3', '--pods-per-node', '3']);
    expect(again.stderr).toMatch(killedAt?.phase === 'creating' ? /cleaning stale objects of lab 'nmt3'/ : /already up/);
    expect(again.code, `lab up failed:\n${again.stderr.slice(-4000)}\n${again.stdout.slice(-4000)}`).toBe(0);
    expect(again.stdout).toContain('pod3-3    node3  10.200.3.4');
    const status = await cli(['lab', 'status', '--lab', 'nmt3']);
    expect(status.code).toBe(0);
    expect(status.stdout).not.toContain('MISSING');
    await labDown('nmt3');
    expect(await leftovers('nmt3')).toEqual([]);
  });

  it('a test that fails midway after lab up still leaves nothing behind (afterAll runs lab down)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nm-fixture-'));
    try {
      const pidsFile = join(dir, 'pids.json');
      const r = spawnSync(process.execPath, [join(repoRoot, 'node_modules/vitest/vitest.mjs'), 'run', '--config', 'test/lab/fixtures/vitest.config.ts'], {
        cwd: repoRoot,
        env: { ...process.env, NM_FIXTURE_PIDS: pidsFile, CI: '' },
        encoding: 'utf8',
        timeout: 120_000,
      });
      const output = r.stdout + r.stderr;
      expect(r.status, output).toBe(1);
      expect(output).toContain('fails on purpose after lab up');
      const pids = JSON.parse(readFileSync(pidsFile, 'utf8')) as Array<{ pid: number; startTime: string }>;
      expect(pids.length).toBe(2);
      for (const p of pids) expect(isSameProcess(p.pid, p.startTime)).toBe(false);
      expect(
        await leftovers(
          'nmt4',
          pids.map((p) => p.pid),
        ),
      ).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
