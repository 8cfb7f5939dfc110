// One qemu boot of a test VM: the kernel and initramfs, the host's root shared read-only over 9p,
// the kernel's modules and a writable result dir as two more shares, the serial console streamed
// line by line. Bounded in time: on timeout (or when the runner is interrupted) qemu is killed by
// its pid, SIGTERM then SIGKILL, and the boot resolves only once the process is gone.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';

export type Accel = 'kvm' | 'tcg';

export interface BootOptions {
  vmlinuz: string;
  initramfs: string;
  modulesDir: string;
  outDir: string;
  /** kernel command line additions (nm.dir=…, nm.tier=…, nm.probe=1) */
  append: string[];
  accel: Accel;
  memoryMiB: number;
  cpus: number;
  timeoutMs: number;
  /** each console line as it arrives */
  onLine?: (line: string) => void;
  /** resolve early (and kill qemu) once a line matches */
  stopWhen?: RegExp;
  /** the whole console output is also written here */
  logFile?: string;
}

export interface BootResult {
  /** qemu's exit code, or null when it was killed */
  code: number | null;
  timedOut: boolean;
  stoppedEarly: boolean;
  seconds: number;
}

/** qemu's argument list (without the nice prefix). Pure. */
export function qemuArgs(o: BootOptions): string[] {
  const share = (id: string, path: string, tag: string, readonly: boolean): string[] => [
    '-fsdev',
    `local,id=${id},path=${path},security_model=none,multidevs=remap${readonly ? ',readonly=on' : ''}`,
    '-device',
    `virtio-9p-pci,fsdev=${id},mount_tag=${tag}`,
  ];
  const accel = o.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max'];
  return [
    '-nodefaults',
    '-no-user-config',
    '-no-reboot',
    '-display',
    'none',
    '-serial',
    'stdio',
    '-monitor',
    'none',
    ...accel,
    '-smp',
    String(o.cpus),
    '-m',
    String(o.memoryMiB),
    '-kernel',
    o.vmlinuz,
    '-initrd',
    o.initramfs,
    '-append',
    // no_timer_check: under TCG on a loaded host the IO-APIC timer check can miss its ticks and
    // panic the guest at boot ("IO-APIC + timer doesn't work!", seen on 5.10 at load 20)
    ['console=ttyS0', 'panic=-1', 'loglevel=4', 'mitigations=off', 'no_timer_check', ...o.append].join(' '),
    ...share('hostroot', '/', 'hostroot', true),
    ...share('modules', o.modulesDir, 'modules', true),
    ...share('out', o.outDir, 'out', false),
    '-nic',
    'none',
  ];
}

const live = new Set<number>();
/** Kills every qemu this process started that is still running (on SIGINT/SIGTERM of the runner). */
export function killAllBoots(): void {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** The VM's nice level: NODEMESH_VM_NICE (0-19), else 10. Pure. */
export function vmNice(env: NodeJS.ProcessEnv): string {
  const n = Number(env.NODEMESH_VM_NICE);
  return env.NODEMESH_VM_NICE !== undefined && env.NODEMESH_VM_NICE !== '' && Number.isInteger(n) && n >= 0 && n <= 19 ? String(n) : '10';
}

export function boot(o: BootOptions): Promise<BootResult> {
  const qemu = '/usr/bin/qemu-system-x86_64';
  const bin = existsSync(qemu) ? qemu : 'qemu-system-x86_64';
  const t0 = Date.now();
  // nice: the VM runs beside other work on the machine and must not starve it. At nice 10 a busy
  // machine's nice-0 jobs get ~10x its share (a lab file took 20-30 min); NODEMESH_VM_NICE=0 runs it
  // as their equal.
  const child = spawn('nice', ['-n', vmNice(process.env), bin, ...qemuArgs(o)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid) live.add(pid);
  const log = o.logFile ? createWriteStream(o.logFile) : undefined;
  let timedOut = false;
  let stoppedEarly = false;
  let killTimer: NodeJS.Timeout | undefined;
  const stop = (): void => {
    if (!pid || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    killTimer = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, 3000);
  };
  let partial = '';
  const onData = (d: Buffer): void => {
    log?.write(d);
    partial += d.toString('utf8');
    const lines = partial.split(/\r?\n/);
    partial = lines.pop() ?? '';
    for (const raw of lines) {
      // the console may carry escape sequences and carriage returns from the guest's programs
      const line = raw.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
      o.onLine?.(line);
      if (o.stopWhen?.test(line) && !stoppedEarly) {
        stoppedEarly = true;
        stop();
      }
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const timer = setTimeout(() => {
    timedOut = true;
    stop();
  }, o.timeoutMs);
  return new Promise((resolve, reject) => {
    child.on('error', (err) => {
      clearTimeout(timer);
      if (pid) live.delete(pid);
      reject(new Error(`starting qemu: ${err.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      if (pid) live.delete(pid);
      if (partial) o.onLine?.(partial);
      log?.end();
      resolve({ code, timedOut, stoppedEarly, seconds: (Date.now() - t0) / 1000 });
    });
  });
}
