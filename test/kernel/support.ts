// Throwaway kernel objects for kernel-tier tests: netns, cgroups, bpffs pin dirs — all named
// nm-k…-<pid> — each removed by name/pid in cleanup(), also when a test fails. Plus a client
// process spawned into a cgroup and a netns, and checks that no BPF program or map of ours is
// left in the kernel.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { unpin } from '../../native/object';

export function cgroup2Root(): string {
  const line = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[2] === 'cgroup2');
  if (!line) throw new Error('no cgroup2 mount in /proc/mounts');
  return line.split(' ')[1] as string;
}

export function ensureBpffs(): void {
  const mounted = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === '/sys/fs/bpf' && l.split(' ')[2] === 'bpf');
  if (!mounted) execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
}

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Collects what a test creates and removes it in reverse order. */
export class Scratch {
  private readonly undo: Array<() => void> = [];
  readonly tag: string;

  constructor(prefix: string) {
    this.tag = `${prefix}-${process.pid}`;
  }

  defer(fn: () => void): void {
    this.undo.push(fn);
  }

  /** A named netns (/run/netns/<name>) with lo up. Returns its path. */
  netns(suffix: string): string {
    const name = `${this.tag}-${suffix}`;
    sh('ip', ['netns', 'add', name]);
    this.defer(() => {
      try {
        sh('ip', ['netns', 'del', name]);
      } catch {
        /* already gone */
      }
    });
    sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return `/run/netns/${name}`;
  }

  /**
   * A veth pair `<name>a`/`<name>b` (name: at most 14 characters) between two of this scratch's
   * netns (paths from netns()), each end with its address on a /30 and up. Deleting the netns
   * removes the pair.
   */
  veth(name: string, a: { netns: string; ip: string }, b: { netns: string; ip: string }): void {
    const [na, nb] = [a.netns.split('/').pop() as string, b.netns.split('/').pop() as string];
    sh('ip', ['-n', na, 'link', 'add', `${name}a`, 'type', 'veth', 'peer', 'name', `${name}b`, 'netns', nb]);
    sh('ip', ['-n', na, 'addr', 'add', `${a.ip}/30`, 'dev', `${name}a`]);
    sh('ip', ['-n', nb, 'addr', 'add', `${b.ip}/30`, 'dev', `${name}b`]);
    sh('ip', ['-n', na, 'link', 'set', `${name}a`, 'up']);
    sh('ip', ['-n', nb, 'link', 'set', `${name}b`, 'up']);
  }

  /** A cgroup v2 directory; on cleanup its processes are killed by pid and it is removed. */
  cgroup(suffix: string): string {
    const dir = join(cgroup2Root(), `${this.tag}-${suffix}`);
    mkdirSync(dir);
    this.defer(() => {
      for (let i = 0; i < 50 && existsSync(dir); i++) {
        const pids = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* exited */
          }
        }
        try {
          rmdirSync(dir);
        } catch {
          execFileSync('sleep', ['0.05']);
        }
      }
    });
    return dir;
  }

  /** A bpffs directory for pins, removed (with everything in it) on cleanup. */
  pinDir(): string {
    ensureBpffs();
    const dir = `/sys/fs/bpf/${this.tag}`;
    mkdirSync(dir, { recursive: true });
    this.defer(() => unpin(dir));
    return dir;
  }

  cleanup(): void {
    const errors: unknown[] = [];
    while (this.undo.length) {
      try {
        this.undo.pop()?.();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length) throw errors[0];
  }
}

export interface ClientResult {
  ok: boolean;
  reply?: string;
  code?: string;
  localAddress?: string;
  localPort?: number;
  ms: number;
}

/**
 * Runs a TCP client inside cgroupDir and netnsPath (it writes its own pid to cgroup.procs before
 * exec'ing into the netns), connecting to host:port, sending `hello`, and reporting the first
 * line it reads back (or the error code).
 */
export function clientInCgroup(
  cgroupDir: string,
  netnsPath: string,
  host: string,
  port: number,
  timeoutMs = 3000,
  localAddress?: string,
): Promise<ClientResult> {
  const script = `
const net = require('net');
const t0 = Date.now();
const out = (r) => { process.stdout.write(JSON.stringify({ ...r, ms: Date.now() - t0 })); process.exit(0); };
const s = net.connect({ host: ${JSON.stringify(host)}, port: ${port}${localAddress ? `, localAddress: ${JSON.stringify(localAddress)}` : ''} });
s.setTimeout(${timeoutMs}, () => out({ ok: false, code: 'TIMEOUT' }));
let buf = '';
s.on('connect', () => s.write('hello\\n'));
s.on('data', (d) => { buf += d; const i = buf.indexOf('\\n'); if (i >= 0) out({ ok: true, reply: buf.slice(0, i), localAddress: s.localAddress, localPort: s.localPort }); });
s.on('error', (e) => out({ ok: false, code: e.code }));
`;
  const child = spawn('sh', ['-c', `echo $$ > "$0/cgroup.procs" && exec nsenter --net="$1" "$2" -e "$3"`, cgroupDir, netnsPath, process.execPath, script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 5000);
    child.on('close', (code) => {
      clearTimeout(kill);
      try {
        resolve(JSON.parse(stdout) as ClientResult);
      } catch {
        reject(new Error(`client exited ${code} without a result: ${stderr || stdout}`));
      }
    });
  });
}

/** Waits until none of the given BPF program / map ids exists any more (freeing is asynchronous). */
export async function expectReleased(progIds: number[], mapIds: number[], timeoutMs = 5000): Promise<void> {
  const exists = (kind: 'prog' | 'map', id: number): boolean => {
    try {
      sh('bpftool', [kind, 'show', 'id', String(id)]);
      return true;
    } catch {
      return false;
    }
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = [
      ...progIds.filter((id) => exists('prog', id)).map((id) => `prog ${id}`),
      ...mapIds.filter((id) => exists('map', id)).map((id) => `map ${id}`),
    ];
    if (!left.length) return;
    if (Date.now() > deadline) throw new Error(`BPF objects still loaded after the test: ${left.join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
