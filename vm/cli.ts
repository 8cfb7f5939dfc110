// `nodemesh vm test [--kernels 5.10,6.1] [--tier kernel,lab|doctor] …`: the kernel matrix
// (vm/kernels.txt) — each kernel booted in qemu (or this machine's own, run directly), doctor and
// each test tier inside, then a table kernel x tier -> passed/failed with the failing tests' names,
// and the recorded matrix (every file's newest result from this and earlier runs, vm/record.ts).
// `nodemesh vm list` shows the kernels, `nodemesh vm matrix` the recorded matrix. Exit code 0 only
// when every row of this run passed.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, type Command } from '../cli/command';
import { projectRoot } from '../common/paths';
import { ensureHostTools } from './host-tools';
import { parseMatrix, selectKernels, type MatrixKernel } from './matrix';
import { formatMatrix, loadRecord, tierFiles } from './record';
import { killAllBoots } from './qemu';
import { formatTable, type KernelOutcome, type VmTier } from './results';
import { recordDir, runKernel, stopRuns } from './runner';

const USAGE = `usage: nodemesh vm test [--kernels NAME,…] [--tier kernel,lab|doctor] [--accel auto|kvm|tcg]
                      [--timeout SECONDS] [--memory MIB] [--cpus N] [--files PATH,…] [--verbose]
       nodemesh vm matrix [--kernels NAME,…] [--tier kernel,lab]
       nodemesh vm list
  test: runs doctor and each test tier given (default: kernel) on every kernel of vm/kernels.txt (or
  those named), each in a qemu VM on this checkout (built on the host first: npm run build), prints
  the table of this run, then the recorded matrix. --timeout is per kernel and tier.
  --files runs only the test files whose path contains one of the given parts (vitest's filters),
  e.g. --tier lab --files test/mesh/,test/dataplane/; the lab tier runs them in that order.
  matrix: the recorded matrix — every test file's newest result on each kernel, from all runs
  (a lab tier can be run in parts with --files), with the commits, times and load averages.
  Kernel packages, initramfs images and console logs are cached in /var/cache/nodemesh/vm
  (NODEMESH_VM_CACHE). Needs root; installs qemu-system-x86, busybox-static, cpio, zstd, kmod.`;

function option(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new CliError(`${name} needs a value\n${USAGE}`, 2);
  return v;
}

function positiveInt(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new CliError(`${name} must be a positive whole number, got "${v}"`, 2);
  return n;
}

/** `--files a,b`: vitest file filters; they travel on the guest's kernel command line, so no whitespace. */
export function parseFileFilters(v: string | undefined): string[] {
  if (v === undefined) return [];
  const parts = v.split(',').filter(Boolean);
  const bad = parts.find((p) => !/^[A-Za-z0-9._/-]+$/.test(p));
  if (bad !== undefined) throw new CliError(`--files: "${bad}" is not a path part (letters, digits, . _ / - only)`, 2);
  return parts;
}

/** `--tier kernel,lab`: tiers in the order given; doctor only alone. */
export function parseTiers(v: string): VmTier[] {
  const tiers = [...new Set(v.split(',').filter(Boolean))];
  const bad = tiers.find((t) => !['kernel', 'lab', 'doctor'].includes(t));
  if (bad !== undefined || tiers.length === 0) throw new CliError(`--tier must be kernel, lab or doctor (or a list: kernel,lab), got "${v}"`, 2);
  if (tiers.includes('doctor') && tiers.length > 1)
    throw new CliError('--tier doctor runs doctor only: give it alone (every tier runs doctor first anyway)', 2);
  return tiers as VmTier[];
}

/** The recorded matrix (vm/record.ts) for these kernels and tiers, against this checkout's test files. */
function recordedMatrix(kernels: MatrixKernel[], tiers: VmTier[]): string {
  const wanted = tiers.filter((t) => t !== 'doctor');
  const all: Partial<Record<VmTier, string[]>> = {};
  for (const t of wanted) all[t] = tierFiles(projectRoot, t);
  return formatMatrix(
    kernels.flatMap((k) => wanted.map((t) => loadRecord(recordDir(), k.name, t))),
    all,
  );
}

export const vmCommand: Command = {
  name: 'vm',
  summary: 'run doctor and a test tier on the kernel matrix (Linux 5.10, 6.1, 6.12, this host) in qemu VMs',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (!sub || sub === '--help' || sub === '-h' || rest.includes('--help')) {
      process.stdout.write(USAGE + '\n');
      return sub ? 0 : 2;
    }
    const matrixFile = join(projectRoot, 'vm/kernels.txt');
    let matrix;
    try {
      matrix = parseMatrix(readFileSync(matrixFile, 'utf8'), matrixFile);
    } catch (err) {
      throw new CliError(err instanceof Error ? err.message : String(err));
    }
    if (sub === 'list') {
      for (const k of matrix)
        process.stdout.write(`${k.name}\t${k.source.kind === 'debian' ? `debian ${k.source.suite} ${k.source.pkg}` : "this machine's kernel"}\n`);
      return 0;
    }
    if (sub !== 'test' && sub !== 'matrix') throw new CliError(`unknown subcommand "${sub}"\n${USAGE}`, 2);
    const known = new Set(
      sub === 'matrix' ? ['--kernels', '--tier'] : ['--kernels', '--tier', '--accel', '--timeout', '--memory', '--cpus', '--files', '--verbose'],
    );
    for (let i = 0; i < rest.length; i++) {
      const a = rest[i] as string;
      if (!known.has(a)) throw new CliError(`unknown option ${a}\n${USAGE}`, 2);
      if (a !== '--verbose') i++;
    }
    const tiers = parseTiers(option(rest, '--tier') ?? (sub === 'matrix' ? 'kernel,lab' : 'kernel'));
    const accel = option(rest, '--accel') ?? 'auto';
    if (!['auto', 'kvm', 'tcg'].includes(accel)) throw new CliError(`--accel must be auto, kvm or tcg, got "${accel}"`, 2);
    let kernels;
    try {
      kernels = selectKernels(matrix, option(rest, '--kernels')?.split(',').filter(Boolean));
    } catch (err) {
      throw new CliError(err instanceof Error ? err.message : String(err), 2);
    }
    if (sub === 'matrix') {
      process.stdout.write(recordedMatrix(kernels, tiers) + '\n');
      return 0;
    }
    if (typeof process.getuid === 'function' && process.getuid() !== 0)
      throw new CliError('the VM runner needs root (qemu, apt-get, the host row): run it as root');
    if (/\s/.test(projectRoot))
      throw new CliError(`the checkout's path "${projectRoot}" holds whitespace, which the guest's kernel command line cannot carry: move it`);
    const log = (l: string): void => void process.stdout.write(l + '\n');
    ensureHostTools(log);
    const onSignal = (): void => {
      killAllBoots();
      stopRuns();
      process.exit(130);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const rows: KernelOutcome[] = [];
    const timeout = option(rest, '--timeout');
    const memory = option(rest, '--memory');
    const cpus = positiveInt(option(rest, '--cpus'), '--cpus', 2);
    const files = parseFileFilters(option(rest, '--files'));
    for (const k of kernels) {
      for (const tier of tiers) {
        const row = await runKernel(k, {
          root: projectRoot,
          tier,
          accel: accel as 'auto' | 'kvm' | 'tcg',
          timeoutS: positiveInt(timeout, '--timeout', tier === 'lab' ? 7200 : 900),
          memoryMiB: positiveInt(memory, '--memory', tier === 'lab' ? 8192 : 4096),
          cpus,
          verbose: rest.includes('--verbose'),
          files,
          log,
        });
        rows.push(row);
        log(
          `${k.name} ${tier}: ${row.result}${row.counts ? ` (${row.counts.passed} passed, ${row.counts.failed} failed, ${row.counts.skipped} skipped)` : ''} in ${Math.round(row.seconds)} s${row.error ? ` — ${row.error}` : ''}`,
        );
      }
    }
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    log('\nthis run:\n' + formatTable(rows));
    const recorded = tiers.filter((t) => t !== 'doctor');
    if (recorded.length) log('\nthe recorded matrix (newest result of every test file, this run and earlier ones):\n' + recordedMatrix(kernels, recorded));
    return rows.every((r) => r.result === 'passed') ? 0 : 1;
  },
};
