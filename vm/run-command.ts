// `node dist/vm/run-command.js [--kernel 6.12] [--timeout S] [--memory MIB] [--cpus N] [--accel auto|kvm|tcg] -- CMD ARG…`
//
// Runs one command as root inside a qemu VM booted with a matrix kernel (vm/kernels.txt), on this
// checkout as built on the host — for what this host's kernel cannot do, e.g. the chaos bench with
// `tc netem` (the development host has no sch_netem; Debian's kernels have it as a module):
//   node dist/vm/run-command.js --kernel 6.12 -- node dist/bench/chaos.js --seconds 120
// The VM is the test VM of `nodemesh vm test` (same kernel cache, initramfs, 9p shares, overlay
// over the host's root, no network device) with a different stage 2 (vm/guest/command.sh): the
// command's output streams to this terminal; the exit code is the command's (3: it never ran or
// did not finish within --timeout). Needs root; run it under the `heavy` wrapper on a shared host.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../common/paths';
import { prepareKernel } from './kernel-image';
import { parseMatrix, selectKernels } from './matrix';
import { boot, killAllBoots, type Accel } from './qemu';

const STAGE2 = 'vm/guest/run.sh';

/** The test VM's stage 1 with its hand-over pointed at command.sh. Pure. */
export function commandInit(testInit: string): string {
  const from = `"$DIR/${STAGE2}"`;
  const at = testInit.lastIndexOf(from);
  if (at < 0 || !testInit.slice(at).startsWith(`${from}`) || !/exec switch_root[^\n]*$/.test(testInit.slice(0, at))) {
    throw new Error(`vm/guest/init no longer hands over with 'exec switch_root … ${from}': update vm/run-command.ts`);
  }
  return `${testInit.slice(0, at)}"$DIR/vm/guest/command.sh"${testInit.slice(at + from.length)}`;
}

/** The command as a bash script line, each argument single-quoted. Pure. */
export function commandScript(argv: readonly string[], env: Readonly<Record<string, string>> = {}): string {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const exports = Object.entries(env).map(([k, v]) => `export ${k}=${q(v)}\n`);
  return `${exports.join('')}exec ${argv.map(q).join(' ')}\n`;
}

function option(argv: string[], name: string, dflt: string): string {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : dflt;
}

async function main(all: string[]): Promise<number> {
  const dd = all.indexOf('--');
  const argv = dd < 0 ? all : all.slice(0, dd);
  const command = dd < 0 ? [] : all.slice(dd + 1);
  if (command.length === 0 || argv.includes('--help')) {
    process.stdout.write('usage: node dist/vm/run-command.js [--kernel 6.12] [--timeout S] [--memory MIB] [--cpus N] [--accel auto|kvm|tcg] -- CMD ARG…\n');
    return command.length === 0 ? 2 : 0;
  }
  const kernelName = option(argv, '--kernel', '6.12');
  const timeoutS = Number(option(argv, '--timeout', '1800'));
  const memoryMiB = Number(option(argv, '--memory', '8192'));
  const cpus = Number(option(argv, '--cpus', '2'));
  const accel = option(argv, '--accel', 'tcg') as Accel;
  if (![timeoutS, memoryMiB, cpus].every((n) => Number.isInteger(n) && n > 0)) throw new Error('--timeout, --memory and --cpus take positive whole numbers');
  if (accel !== 'kvm' && accel !== 'tcg') throw new Error('--accel is kvm or tcg');
  const [k] = selectKernels(parseMatrix(readFileSync(join(projectRoot, 'vm/kernels.txt'), 'utf8')), [kernelName]);
  if (!k || k.source.kind !== 'debian') throw new Error(`--kernel ${kernelName}: not a Debian kernel of vm/kernels.txt`);
  const log = (l: string): void => void process.stderr.write(`vm-run: ${l}\n`);
  const image = prepareKernel(k, commandInit(readFileSync(join(projectRoot, 'vm/guest/init'), 'utf8')), log);
  const out = mkdtempSync(join(tmpdir(), 'nm-vm-cmd-'));
  const stop = (): void => {
    killAllBoots();
    rmSync(out, { recursive: true, force: true });
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => (stop(), process.exit(130)));
  try {
    // the guest's speed relative to the host: TCG is several times slower (lab/time-scale.ts)
    writeFileSync(join(out, 'command'), commandScript(command, { NODEMESH_SPEED_FACTOR: process.env.NODEMESH_SPEED_FACTOR ?? (accel === 'tcg' ? '8' : '1') }));
    log(`${k.name}: booting ${image.release} (${accel}, ${cpus} cpu, ${memoryMiB} MiB), at most ${timeoutS} s: ${command.join(' ')}`);
    const r = await boot({
      vmlinuz: image.vmlinuz,
      initramfs: image.initramfs,
      modulesDir: image.modulesRoot,
      outDir: out,
      append: [`nm.dir=${projectRoot}`],
      accel,
      memoryMiB,
      cpus,
      timeoutMs: timeoutS * 1000,
      onLine: (l) => void process.stdout.write(`${l}\n`),
    });
    let rc: string | undefined;
    try {
      rc = readFileSync(join(out, 'rc'), 'utf8').trim();
    } catch {
      rc = undefined;
    }
    log(`${k.name}: ${r.timedOut ? `timed out after ${timeoutS} s` : 'powered off'} after ${r.seconds.toFixed(0)} s; command exit ${rc ?? 'unknown'}`);
    return rc === undefined || r.timedOut ? 3 : Number(rc);
  } finally {
    stop();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`vm-run: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(2);
    },
  );
}
