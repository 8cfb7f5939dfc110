// `nodemesh vm test`: for each kernel of the matrix, boot it (or, for `host`, use this machine's
// kernel directly), run `nodemesh doctor` and a test tier against this checkout as built on the
// host (the BPF objects are CO-RE, the addon links the same userland), and collect a row of the
// kernel x tier table. Every qemu process ends before the next kernel starts; the result share
// (a temp dir) is removed; caches stay under cacheDir().
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareKernel, cacheDir } from './kernel-image';
import type { MatrixKernel } from './matrix';
import { boot, type Accel } from './qemu';
import { fileResults, mergeRun, updateRecord } from './record';
import { countReport, type KernelOutcome, type VmTier } from './results';
import { cutFile, mergeFileEntries, readFileEntries, readRunningEntry, runningFile } from './file-report';

export interface RunOptions {
  root: string;
  tier: VmTier;
  accel: Accel | 'auto';
  /** per kernel, seconds */
  timeoutS: number;
  memoryMiB: number;
  cpus: number;
  /** vitest file filters (a test file runs when its path contains one); empty: the whole tier */
  files: string[];
  /** stream the guest's console (else only the runner's progress lines) */
  verbose: boolean;
  log: (line: string) => void;
}

export const PRIV_LOCK = '/tmp/nm-priv.lock';

// Result dirs of runs in progress, removed when a run ends and on an interrupt (removeScratch).
const scratch = new Set<string>();
function scratchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratch.add(dir);
  return dir;
}
function dropScratch(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  scratch.delete(dir);
}
// Process groups of host-row runs in progress (killed on an interrupt).
const hostGroups = new Set<number>();

/** The runner was interrupted: kills host-row runs by process group, removes result dirs. */
export function stopRuns(): void {
  for (const pgid of hostGroups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const dir of [...scratch]) dropScratch(dir);
}

function doctorVerdict(rc: string | undefined, text: string | undefined): string | undefined {
  if (rc === undefined) return undefined;
  if (rc.trim() === '0') return 'ok';
  const missing = (text ?? '').split('\n').filter((l) => /^\s*missing\s/.test(l)).length;
  return missing ? `${missing} missing` : `exit ${rc.trim()}`;
}

function readIf(path: string): string | undefined {
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}

/** The outcome from a result dir (report.json, tier.rc, doctor.*, release). */
export function outcomeFrom(dir: string, k: string, tier: RunOptions['tier'], root: string, seconds: number, accel: string): KernelOutcome {
  const release = readIf(join(dir, 'release'))?.trim();
  const doctor = doctorVerdict(readIf(join(dir, 'doctor.rc')), readIf(join(dir, 'doctor.txt')));
  const row: KernelOutcome = { kernel: k, release, accel, tier, result: 'error', doctor, seconds };
  if (tier === 'doctor') {
    row.result = doctor === 'ok' ? 'passed' : 'failed';
    if (!doctor) row.error = 'the guest never ran doctor (see the console log)';
    return row;
  }
  // files/NNN.json, each written as its file ended (vm/file-report.ts), or an older guest's
  // report.json / report-N.json: the files that finished, also when the run was cut
  const texts = readFileEntries(dir);
  // the guest writes tier.rc when the tier has ended; without it the VM stopped part-way (qemu
  // killed or the guest died): the files that finished count, and the file in progress when its
  // tests had all ended (cut in its clean-up) or one had failed, but the run is not a pass
  const finished = readIf(join(dir, 'tier.rc')) !== undefined;
  const finishedFiles = mergeFileEntries(texts)?.report;
  const rel = (p: string): string => (p.startsWith(root + '/') ? p.slice(root.length + 1) : p);
  const finishedNames = new Set(finishedFiles ? fileResults(finishedFiles, root).map((f) => f.file) : []);
  // (a file whose entry was written just before the stop is finished, not cut)
  const running = finished ? undefined : runningFile(dir);
  let cutIn: string | undefined;
  if (running && !finishedNames.has(rel(running))) {
    const partial = readRunningEntry(dir);
    const cut = partial && partial.entry.name === running ? cutFile(partial) : undefined;
    if (cut?.entry) texts.push(JSON.stringify(cut.entry));
    cutIn = `in ${rel(running)}${cut ? ` (${cut.state})` : ''}`;
  }
  const report = mergeFileEntries(texts)?.report;
  if (cutIn) row.cutIn = cutIn;
  if (!report) {
    row.error = release
      ? `the ${tier} tier left no file result${cutIn ? `, ${cutIn}` : ''} (see the console log)`
      : 'the guest never reached its root (see the console log)';
    return row;
  }
  row.counts = countReport(report, root);
  row.files = fileResults(report, root);
  row.result = row.counts.failed ? 'failed' : 'passed';
  if (!finished) {
    row.finishedFiles = finishedNames.size;
    row.error = `the ${tier} tier did not finish (the VM stopped after ${row.finishedFiles} finished file(s)${cutIn ? `, ${cutIn}` : ''})`;
    if (row.result === 'passed') row.result = 'error';
  }
  return row;
}

/** A row's error when its run hit the time limit: the limit, how many files finished and which file it was cut in. Pure. */
export function timeoutError(timeoutS: number, row: Pick<KernelOutcome, 'files' | 'error' | 'cutIn' | 'finishedFiles'>, killed = 'qemu was killed'): string {
  const head = `timed out after ${timeoutS} s; ${killed}`;
  if (!row.files?.length) return row.error ? `${head} (${row.error})` : head;
  return `${head} after ${row.finishedFiles ?? 0} finished file(s)${row.cutIn ? `, ${row.cutIn}` : ''}`;
}

/** The guest's speed factor when the runner's NODEMESH_SPEED_FACTOR gives one (a number ≥ 1), else none: the guest measures it (vm/speed-probe.ts). Pure. */
export function guestSpeedArg(env: NodeJS.ProcessEnv): string[] {
  const f = Number(env.NODEMESH_SPEED_FACTOR);
  return env.NODEMESH_SPEED_FACTOR && Number.isFinite(f) && f >= 1 ? [`nm.speed=${f}`] : [];
}

/** The mesh processes' logs the guest kept (vm/guest/run.sh), moved to `to`. */
function keepGuestLogs(out: string, to: string): void {
  const kept = join(out, 'kept');
  if (existsSync(kept)) cpSync(kept, to, { recursive: true });
}

/** KVM when /dev/kvm works for this kernel (a short probe boot, remembered), else TCG. */
async function chooseAccel(o: RunOptions, vmlinuz: string, initramfs: string, modulesDir: string, release: string): Promise<Accel> {
  if (o.accel !== 'auto') return o.accel;
  try {
    closeSync(openSync('/dev/kvm', 'r+'));
  } catch {
    return 'tcg';
  }
  const hostRelease = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
  const memo = join(cacheDir(), 'accel', `${release}@${hostRelease}`);
  const known = readIf(memo)?.trim();
  if (known === 'kvm' || known === 'tcg') return known;
  o.log(`probing KVM with ${release} (a 30 s boot at most; stock kernels hang on some paravirtual /dev/kvm)`);
  const out = scratchDir('nm-vm-probe-');
  let seen = false;
  try {
    await boot({
      vmlinuz,
      initramfs,
      modulesDir,
      outDir: out,
      append: ['nm.probe=1'],
      accel: 'kvm',
      memoryMiB: 512,
      cpus: 1,
      timeoutMs: 30_000,
      onLine: (l) => (seen ||= /nm-vm: probe ok/.test(l)),
    });
  } finally {
    dropScratch(out);
  }
  const accel: Accel = seen ? 'kvm' : 'tcg';
  mkdirSync(join(cacheDir(), 'accel'), { recursive: true });
  writeFileSync(memo, accel + '\n');
  o.log(`KVM ${seen ? 'works' : 'does not boot this kernel'}: using ${accel}`);
  return accel;
}

async function runInVm(k: MatrixKernel, o: RunOptions, logs: RunLogs): Promise<KernelOutcome> {
  const t0 = Date.now();
  const init = readFileSync(join(o.root, 'vm/guest/init'), 'utf8');
  const image = prepareKernel(k, init, o.log);
  const accel = await chooseAccel(o, image.vmlinuz, image.initramfs, image.modulesRoot, image.release);
  const out = scratchDir('nm-vm-');
  const logFile = logs.log;
  const which = o.files.length ? ` (files matching ${o.files.join(', ')})` : '';
  o.log(
    `${k.name}: booting ${image.release} (${accel}, ${o.cpus} cpu, ${o.memoryMiB} MiB), ${o.tier} tier${which}, at most ${o.timeoutS} s; console in ${logFile}`,
  );
  try {
    const r = await boot({
      vmlinuz: image.vmlinuz,
      initramfs: image.initramfs,
      modulesDir: image.modulesRoot,
      outDir: out,
      append: [
        `nm.dir=${o.root}`,
        `nm.tier=${o.tier === 'doctor' ? 'none' : o.tier}`,
        ...(o.files.length ? [`nm.files=${o.files.join(',')}`] : []),
        ...guestSpeedArg(process.env),
      ],
      accel,
      memoryMiB: o.memoryMiB,
      cpus: o.cpus,
      timeoutMs: o.timeoutS * 1000,
      logFile,
      onLine: (l) => {
        if (o.verbose || /^nm-vm: |^ *(✓|×|↓|❯) |Test Files|Tests /.test(l)) o.log(`  [${k.name}] ${l}`);
      },
    });
    const row = outcomeFrom(out, k.name, o.tier, o.root, (Date.now() - t0) / 1000, accel);
    keepGuestLogs(out, logs.kept);
    if (r.timedOut) row.error = timeoutError(o.timeoutS, row);
    if (r.timedOut && row.result === 'passed') row.result = 'error';
    return row;
  } finally {
    dropScratch(out);
  }
}

/** The host row: this machine's kernel, the tier run directly, under the machine's privileged-test lock. */
async function runOnHost(k: MatrixKernel, o: RunOptions, logs: RunLogs): Promise<KernelOutcome> {
  const t0 = Date.now();
  const out = scratchDir('nm-vm-host-');
  const logFile = logs.log;
  const sh = [
    'uname -r > "$OUT/release"',
    'node dist/cli/main.js doctor > "$OUT/doctor.txt" 2>&1; echo $? > "$OUT/doctor.rc"',
    o.tier === 'doctor'
      ? 'true'
      : `NM_VM_REPORT_DIR="$OUT" NM_VM_ORDER=${o.files.join(',')} flock ${PRIV_LOCK} node node_modules/vitest/vitest.mjs run --config vm/guest/vitest.config.mjs --project ${o.tier} ${o.files.join(' ')}; echo $? > "$OUT/tier.rc"`,
  ].join('\n');
  o.log(`${k.name}: this machine's kernel, ${o.tier} tier run directly (waits for ${PRIV_LOCK}), at most ${o.timeoutS} s; output in ${logFile}`);
  const child = spawn('bash', ['-c', `exec > >(tee "${logFile}") 2>&1\n${sh}`], {
    cwd: o.root,
    env: { ...process.env, OUT: out, CI: 'true' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  if (child.pid) hostGroups.add(child.pid);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    if (child.pid) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }, o.timeoutS * 1000);
  const onData = (d: Buffer): void => {
    for (const raw of d.toString('utf8').split('\n')) {
      const l = raw.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
      if (l && (o.verbose || /^ *(✓|×|↓|❯) |Test Files|Tests /.test(l))) o.log(`  [${k.name}] ${l}`);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  await new Promise<void>((resolve) => child.on('close', () => resolve()));
  clearTimeout(timer);
  if (child.pid) hostGroups.delete(child.pid);
  try {
    const row = outcomeFrom(out, k.name, o.tier, o.root, (Date.now() - t0) / 1000, 'host');
    if (timedOut) {
      row.error = timeoutError(o.timeoutS, row, 'killed');
      row.result = 'error';
    }
    return row;
  } finally {
    dropScratch(out);
  }
}

/** The host's 1-minute load average. */
function load1(): string {
  return readIf('/proc/loadavg')?.split(' ')[0] ?? '?';
}

/** The checkout's commit (short; "+dirty" when tracked files differ from it), or "unknown". */
export function checkoutCommit(root: string): string {
  try {
    const c = execFileSync('git', ['-C', root, 'rev-parse', '--short=8', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return dirty ? `${c}+dirty` : c;
  } catch {
    return 'unknown';
  }
}

/** Where every run's per-file results are recorded (vm/record.ts). */
export function recordDir(): string {
  return join(cacheDir(), 'results');
}

/** A run's console log and kept mesh logs (runLogPaths). */
export interface RunLogs {
  log: string;
  kept: string;
  passedLog: string;
  passedKept: string;
}

/**
 * Where a run's console log and kept mesh logs go: each run writes under its own name
 * (`<kernel>-<tier>-<UTC time>-<pid>.log`, and `…-kept/`), so runs of one kernel and tier at the
 * same time or one after the other never overwrite each other. A run that passed then takes the
 * short names (`<kernel>-<tier>.log`, `<kernel>-<tier>-kept`: the last passing run's); a failed or
 * cut one keeps its own, which the row's error names. Pure.
 */
export function runLogPaths(logDir: string, kernel: string, tier: VmTier, at: Date, pid: number): RunLogs {
  const stamp = at
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/[-:]/g, '');
  const own = join(logDir, `${kernel}-${tier}-${stamp}-${pid}`);
  return { log: `${own}.log`, kept: `${own}-kept`, passedLog: join(logDir, `${kernel}-${tier}.log`), passedKept: join(logDir, `${kernel}-${tier}-kept`) };
}

/** A finished run's logs: a passed run's under the short names, a failed one's left under their own (named in the row). */
function settleLogs(row: KernelOutcome, paths: RunLogs): void {
  if (row.result === 'passed') {
    if (existsSync(paths.log)) renameSync(paths.log, paths.passedLog);
    if (existsSync(paths.kept)) {
      rmSync(paths.passedKept, { recursive: true, force: true });
      renameSync(paths.kept, paths.passedKept);
    }
    return;
  }
  const kept = existsSync(paths.kept) ? `; the mesh logs in ${paths.kept}` : '';
  row.error = `${row.error ? `${row.error}; ` : ''}console log kept in ${paths.log}${kept}`;
}

export async function runKernel(k: MatrixKernel, o: RunOptions): Promise<KernelOutcome> {
  const loadBefore = load1();
  const logDir = join(cacheDir(), 'logs');
  mkdirSync(logDir, { recursive: true });
  const logs = runLogPaths(logDir, k.name, o.tier, new Date(), process.pid);
  let row: KernelOutcome;
  try {
    row = k.source.kind === 'host' ? await runOnHost(k, o, logs) : await runInVm(k, o, logs);
  } catch (err) {
    row = { kernel: k.name, tier: o.tier, result: 'error', error: err instanceof Error ? err.message : String(err), seconds: 0 };
  }
  settleLogs(row, logs);
  row.load = `${loadBefore}-${load1()}`;
  if (row.files?.length && o.tier !== 'doctor') {
    const meta = { commit: checkoutCommit(o.root), release: row.release, accel: row.accel, at: new Date().toISOString(), load: row.load };
    const files = row.files;
    try {
      updateRecord(recordDir(), k.name, o.tier, (rec) => mergeRun(rec, files, meta));
    } catch (err) {
      row.error = `${row.error ? `${row.error}; ` : ''}${err instanceof Error ? err.message : String(err)}`;
    }
  }
  return row;
}
