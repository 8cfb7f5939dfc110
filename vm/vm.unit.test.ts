// The VM runner's pure parts: the matrix file, reading vitest's JSON report, the table, qemu's
// arguments, the private apt sources and the initramfs module order.
import { describe, expect, it } from 'vitest';
import { moduleLoadOrder, sourcesList } from './kernel-image';
import { parseMatrix, selectKernels } from './matrix';
import { parseFileFilters, parseTiers } from './cli';
import { fileResults, formatMatrix, loadRecord, mergeRun, type TierRecord, updateRecord } from './record';
import { qemuArgs, vmNice } from './qemu';
import { countReport, formatTable } from './results';
import { guestSpeedArg, outcomeFrom, runLogPaths, timeoutError } from './runner';
import { dataPathSample, vmSpeedFactor } from './speed-probe';
import { cutFile, FileReporter, inGivenOrder, mergeFileEntries, moduleEntry, readFileEntries, readRunningEntry, type ModuleSummary } from './file-report';
import { scaled } from '../test/support/speed';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

describe('the kernel matrix file', () => {
  it('reads debian and host lines, skipping comments and blank lines', () => {
    const m = parseMatrix('# c\n5.10 debian bullseye linux-image-amd64  # floor\n\nhost host\n');
    expect(m).toEqual([
      { name: '5.10', source: { kind: 'debian', suite: 'bullseye', pkg: 'linux-image-amd64' } },
      { name: 'host', source: { kind: 'host' } },
    ]);
  });

  it('the shipped matrix holds 5.10, 6.1, 6.12 and the host', () => {
    const m = parseMatrix(readFileSync(join(__dirname, 'kernels.txt'), 'utf8'));
    expect(m.map((k) => k.name)).toEqual(['5.10', '6.1', '6.12', 'host']);
  });

  it('names the line of a malformed entry', () => {
    expect(() => parseMatrix('5.10 debian bullseye\n', 'k.txt')).toThrow(/k.txt:1: expected "5.10 debian SUITE PACKAGE"/);
    expect(() => parseMatrix('a host\nb rpm x y\n', 'k.txt')).toThrow(/k.txt:2: unknown source "rpm"/);
    expect(() => parseMatrix('a host\na host\n')).toThrow(/listed twice/);
    expect(() => parseMatrix('a/b host\n')).toThrow(/may only hold/);
    expect(() => parseMatrix('x debian "bad suite" p\n')).toThrow(/./);
  });

  it('--kernels picks names in the order given; an unknown name lists the known ones', () => {
    const m = parseMatrix('a host\nb debian s p\nc debian s p\n');
    expect(selectKernels(m, ['c', 'a']).map((k) => k.name)).toEqual(['c', 'a']);
    expect(selectKernels(m, undefined)).toHaveLength(3);
    expect(() => selectKernels(m, ['z'])).toThrow('unknown kernel "z"; the matrix has: a, b, c');
  });
});

describe('tier results', () => {
  const report = JSON.stringify({
    testResults: [
      {
        name: '/repo/test/kernel/a.kernel.test.ts',
        status: 'failed',
        assertionResults: [
          { fullName: '[kernel] a works', status: 'passed' },
          { fullName: '[kernel] a breaks', status: 'failed' },
          { fullName: '[kernel] a later', status: 'skipped' },
        ],
      },
      { name: '/repo/test/kernel/b.kernel.test.ts', status: 'failed', message: 'Cannot find module x\nstack', assertionResults: [] },
      { name: '/repo/test/kernel/c.kernel.test.ts', status: 'passed', assertionResults: [{ title: 'c', status: 'passed' }] },
    ],
  });

  it('counts passed, failed and skipped tests and names every failure, a file that failed to load too', () => {
    expect(countReport(report, '/repo')).toEqual({
      passed: 2,
      failed: 2,
      skipped: 1,
      failures: ['test/kernel/a.kernel.test.ts > [kernel] a breaks', 'test/kernel/b.kernel.test.ts: Cannot find module x'],
    });
  });

  it('the per-file reports of an older guest (report-N.json) count as one report', () => {
    const parts = (JSON.parse(report) as { testResults: unknown[] }).testResults.map((f) => JSON.stringify({ testResults: [f] }));
    expect(countReport(mergeFileEntries(parts)?.report ?? '', '/repo')).toEqual(countReport(report, '/repo'));
  });

  it('a lab run the VM did not finish (qemu stopped part-way) keeps its finished files but is no pass', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nm-vm-outcome-'));
    try {
      const passing = JSON.stringify({ testResults: [JSON.parse(report).testResults[2]] });
      writeFileSync(join(dir, 'release'), '6.12.118+deb13-amd64\n');
      writeFileSync(join(dir, 'report-1.json'), passing);
      const cut = outcomeFrom(dir, '6.12', 'lab', '/repo', 600, 'tcg');
      expect(cut.result).toBe('error');
      expect(cut.error).toBe('the lab tier did not finish (the VM stopped after 1 finished file(s))');
      expect(cut.files?.map((f) => f.file)).toEqual(['test/kernel/c.kernel.test.ts']);
      writeFileSync(join(dir, 'tier.rc'), '0\n');
      const whole = outcomeFrom(dir, '6.12', 'lab', '/repo', 600, 'tcg');
      expect(whole.result).toBe('passed');
      expect(whole.error).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the table has a row per kernel and tier, then the failures and errors', () => {
    const t = formatTable([
      {
        kernel: '5.10',
        release: '5.10.0-46-amd64',
        accel: 'tcg',
        tier: 'kernel',
        result: 'failed',
        doctor: 'ok',
        seconds: 131.6,
        load: '1.5-3.0',
        counts: countReport(report, '/repo'),
      },
      { kernel: '6.1', tier: 'kernel', result: 'error', error: 'timed out after 900 s; qemu was killed', seconds: 900 },
    ]).split('\n');
    expect(t[0]).toMatch(/^KERNEL +RELEASE +ACCEL +TIER +RESULT +PASSED +FAILED +SKIPPED +DOCTOR +TIME +LOAD$/);
    expect(t[1]).toMatch(/^5\.10 +5\.10\.0-46-amd64 +tcg +kernel +failed +2 +2 +1 +ok +132 s +1\.5-3\.0$/);
    expect(t[2]).toMatch(/^6\.1 +- +- +kernel +error +- +- +- +- +900 s +-$/);
    expect(t.slice(3)).toEqual([
      '5.10 kernel: FAILED test/kernel/a.kernel.test.ts > [kernel] a breaks',
      '5.10 kernel: FAILED test/kernel/b.kernel.test.ts: Cannot find module x',
      '6.1 kernel: timed out after 900 s; qemu was killed',
    ]);
  });
});

describe('booting', () => {
  const base = {
    vmlinuz: '/k/vmlinuz',
    initramfs: '/k/i.cpio',
    modulesDir: '/k/lib/modules',
    outDir: '/tmp/o',
    append: ['nm.tier=kernel'],
    memoryMiB: 4096,
    cpus: 2,
    timeoutMs: 1,
  };

  it('TCG runs multi-threaded with -cpu max; KVM with -cpu host; the host root is shared read-only', () => {
    const tcg = qemuArgs({ ...base, accel: 'tcg' }).join(' ');
    expect(tcg).toContain('-accel tcg,thread=multi -cpu max -smp 2 -m 4096');
    expect(tcg).toContain('-no-reboot');
    expect(tcg).toContain('local,id=hostroot,path=/,security_model=none,multidevs=remap,readonly=on');
    expect(tcg).toContain('local,id=out,path=/tmp/o,security_model=none,multidevs=remap -device');
    expect(tcg).toMatch(/-append console=ttyS0 .*no_timer_check.*nm\.tier=kernel/);
    expect(qemuArgs({ ...base, accel: 'kvm' }).join(' ')).toContain('-accel kvm -cpu host');
  });

  it('runs qemu at nice 10 unless NODEMESH_VM_NICE names a level 0-19', () => {
    expect(vmNice({})).toBe('10');
    expect(vmNice({ NODEMESH_VM_NICE: '0' })).toBe('0');
    expect(vmNice({ NODEMESH_VM_NICE: '19' })).toBe('19');
    for (const bad of ['', '-5', '20', '2.5', 'low']) expect(vmNice({ NODEMESH_VM_NICE: bad })).toBe('10');
  });

  it('the private apt sources name the suite and its security suite, signed by the Debian keyring', () => {
    expect(sourcesList('bullseye', 'http://m/debian', 'http://m/sec', '/k.gpg')).toBe(
      'deb [signed-by=/k.gpg] http://m/debian bullseye main\ndeb [signed-by=/k.gpg] http://m/sec bullseye-security main\n',
    );
    expect(sourcesList('bookworm-backports', 'http://m/debian', 'http://m/sec', '/k.gpg')).toBe(
      'deb [signed-by=/k.gpg] http://m/debian bookworm-backports main\n',
    );
  });

  it('modules load in modprobe --show-depends order, once each, built-ins left out', () => {
    expect(
      moduleLoadOrder([
        'insmod /m/virtio.ko \ninsmod /m/virtio_ring.ko \ninsmod /m/virtio_pci.ko ',
        'insmod /m/virtio.ko \ninsmod /m/9pnet.ko \ninsmod /m/9pnet_virtio.ko ',
        'builtin overlay',
      ]),
    ).toEqual(['/m/virtio.ko', '/m/virtio_ring.ko', '/m/virtio_pci.ko', '/m/9pnet.ko', '/m/9pnet_virtio.ko']);
  });
});

describe('the guest’s speed factor', () => {
  it('the runner hands the guest a factor only when NODEMESH_SPEED_FACTOR gives one', () => {
    expect(guestSpeedArg({ NODEMESH_SPEED_FACTOR: '6' })).toEqual(['nm.speed=6']);
    expect(guestSpeedArg({ NODEMESH_SPEED_FACTOR: '2.5' })).toEqual(['nm.speed=2.5']);
    for (const bad of [undefined, '', '0.5', 'x', '-3']) expect(guestSpeedArg({ NODEMESH_SPEED_FACTOR: bad })).toEqual([]);
  });

  it(
    'the data-path sample moves its bytes through the kernel and back, and the factor is the larger of the two samples’',
    async () => {
      const ms = await dataPathSample(1 << 20);
      expect(ms).toBeGreaterThan(0);
      const f = await vmSpeedFactor(2);
      expect(f.cpu).toBeGreaterThanOrEqual(1);
      expect(f.dataPath).toBeGreaterThanOrEqual(1);
      expect(f.factor).toBe(Math.max(f.cpu, f.dataPath));
      expect(f.rounds).toBe(2);
      // past its time budget it measures no further round (at least one)
      expect((await vmSpeedFactor(8, 0)).rounds).toBe(1);
    },
    scaled(30_000),
  );
});

describe('--files', () => {
  it('splits path parts and refuses what the guest kernel command line cannot carry', () => {
    expect(parseFileFilters(undefined)).toEqual([]);
    expect(parseFileFilters('test/mesh/,test/dataplane/')).toEqual(['test/mesh/', 'test/dataplane/']);
    expect(() => parseFileFilters('test/mesh/,a b')).toThrow(/"a b" is not a path part/);
    expect(() => parseFileFilters('x;rm')).toThrow(/not a path part/);
  });

  it('the guest runs the lab files in the order of the filters (each once), sorted within one; all of them without filters', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nm-labfiles-'));
    try {
      for (const f of [
        'test/mesh/mesh.lab.test.ts',
        'test/mesh/waypoint.lab.test.ts',
        'test/dataplane/dataplane.lab.test.ts',
        'test/mesh/harness.ts',
        'node_modules/x/y.lab.test.ts',
      ]) {
        mkdirSync(join(dir, dirname(f)), { recursive: true });
        writeFileSync(join(dir, f), '');
      }
      const list = (...filters: string[]): string[] =>
        execFileSync('bash', [join(__dirname, 'guest/lab-files.sh'), ...filters], { cwd: dir, encoding: 'utf8' })
          .split('\n')
          .filter(Boolean);
      expect(list()).toEqual(['test/dataplane/dataplane.lab.test.ts', 'test/mesh/mesh.lab.test.ts', 'test/mesh/waypoint.lab.test.ts']);
      expect(list('waypoint.lab', 'dataplane/', 'test/mesh/')).toEqual([
        'test/mesh/waypoint.lab.test.ts',
        'test/dataplane/dataplane.lab.test.ts',
        'test/mesh/mesh.lab.test.ts',
      ]);
      expect(list('nothing')).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('--tier', () => {
  it('takes a tier or a list in order; doctor only alone', () => {
    expect(parseTiers('kernel')).toEqual(['kernel']);
    expect(parseTiers('kernel,lab')).toEqual(['kernel', 'lab']);
    expect(parseTiers('lab,kernel,lab')).toEqual(['lab', 'kernel']);
    expect(() => parseTiers('unit')).toThrow(/--tier must be kernel, lab or doctor/);
    expect(() => parseTiers('doctor,lab')).toThrow(/give it alone/);
  });
});

describe('the recorded matrix', () => {
  const report = (files: Array<{ f: string; t: Array<[string, string]>; ms: number; status?: string; message?: string }>): string =>
    JSON.stringify({
      testResults: files.map((x) => ({
        name: `/repo/${x.f}`,
        status: x.status ?? (x.t.some(([, s]) => s === 'failed') ? 'failed' : 'passed'),
        message: x.message,
        startTime: 1_000,
        endTime: 1_000 + x.ms,
        assertionResults: x.t.map(([fullName, status]) => ({
          fullName,
          status,
          failureMessages: status === 'failed' ? [`AssertionError: ${fullName}\n    at x.ts:1`] : [],
        })),
      })),
    });

  it('reads each file’s counts, failures and running time; a file that failed to load counts as one failure', () => {
    const r = fileResults(
      report([
        {
          f: 'test/a.lab.test.ts',
          t: [
            ['a one', 'passed'],
            ['a two', 'failed'],
            ['a three', 'skipped'],
          ],
          ms: 61_500,
        },
        { f: 'test/b.lab.test.ts', t: [], ms: 10, status: 'failed', message: '\nCannot find module x\nstack' },
        { f: 'test/c.lab.test.ts', t: [['c one', 'skipped']], ms: 10, status: 'failed', message: '' },
      ]),
      '/repo',
    );
    expect(r).toEqual([
      { file: 'test/a.lab.test.ts', passed: 1, failed: 1, skipped: 1, failures: ['a two — AssertionError: a two'], seconds: 61.5 },
      { file: 'test/b.lab.test.ts', passed: 0, failed: 1, skipped: 0, failures: ['Cannot find module x'], seconds: 0.01 },
      {
        file: 'test/c.lab.test.ts',
        passed: 0,
        failed: 1,
        skipped: 1,
        failures: ['failed outside its tests (a beforeAll/afterAll hook?): the console log says why'],
        seconds: 0.01,
      },
    ]);
  });

  it('a newer run replaces a file’s result; the matrix counts the files run of the tier and says which are missing', () => {
    const all = { lab: ['test/a.lab.test.ts', 'test/b.lab.test.ts', 'test/c.lab.test.ts'] };
    let rec: TierRecord = { kernel: '5.10', tier: 'lab', files: {} };
    const meta = (commit: string, load: string) => ({ commit, release: '5.10.0-46-amd64', accel: 'tcg', at: '2026-12-05T05:00:00Z', load });
    rec = mergeRun(rec, fileResults(report([{ f: 'test/a.lab.test.ts', t: [['a one', 'failed']], ms: 100_000 }]), '/repo'), meta('aaaa', '2.0-9.5'));
    rec = mergeRun(rec, fileResults(report([{ f: 'test/b.lab.test.ts', t: [['b one', 'passed']], ms: 50_000 }]), '/repo'), meta('bbbb', '3.0-4.0'));
    let t = formatMatrix([rec, { kernel: '6.1', tier: 'lab', files: {} }], all).split('\n');
    expect(t[0]).toMatch(/^KERNEL +TIER +RESULT +FILES +PASSED +FAILED +SKIPPED +TIME +RELEASE +LOAD +COMMITS$/);
    expect(t[1]).toMatch(/^5\.10 +lab +failed +2\/3 +1 +1 +0 +150 s +5\.10\.0-46-amd64 +2\.0-9\.5 +aaaa,bbbb$/);
    expect(t[2]).toMatch(/^6\.1 +lab +not run +0\/3 +0 +0 +0 +- +- +- +-$/);
    expect(t.slice(3)).toEqual([
      '5.10 lab: not run yet: test/c.lab.test.ts',
      '5.10 lab: FAILED test/a.lab.test.ts > a one — AssertionError: a one (aaaa, 2026-12-05T05:00:00Z)',
    ]);
    // the file passes on a later run; the last file too: the row is green
    rec = mergeRun(rec, fileResults(report([{ f: 'test/a.lab.test.ts', t: [['a one', 'passed']], ms: 90_000 }]), '/repo'), meta('cccc', '1.0-2.0'));
    rec = mergeRun(rec, fileResults(report([{ f: 'test/c.lab.test.ts', t: [['c one', 'passed']], ms: 10_000 }]), '/repo'), meta('cccc', '1.0-2.0'));
    t = formatMatrix([rec], all).split('\n');
    expect(t[1]).toMatch(/^5\.10 +lab +passed +3\/3 +3 +0 +0 +150 s +5\.10\.0-46-amd64 +1\.0-4\.0 +cccc,bbbb$/);
    expect(t).toHaveLength(2);
    // a file no longer in the tier is not counted
    t = formatMatrix([rec], { lab: ['test/a.lab.test.ts'] }).split('\n');
    expect(t[1]).toMatch(/^5\.10 +lab +passed +1\/1 +1 +0 +0 +90 s /);
  });

  describe('recording under the kernel’s lock', () => {
    const meta = { commit: 'aaaa', at: '2026-12-05T05:00:00Z' };
    const result = (file: string) => ({ file, passed: 1, failed: 0, skipped: 0, failures: [], seconds: 1 });
    const withDir = (fn: (dir: string) => void | Promise<void>) => async () => {
      const dir = mkdtempSync(join(tmpdir(), 'nm-vm-record-'));
      try {
        await fn(dir);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    };

    it(
      'a run ending while another holds the lock waits for it and keeps both runs’ files',
      withDir(async (dir) => {
        updateRecord(dir, '5.10', 'lab', (r) => mergeRun(r, [result('test/a.lab.test.ts')], meta));
        // another run holds the lock: a live process, which lets go after 600 ms
        const lock = join(dir, '5.10.lock');
        const holder = spawn('sh', ['-c', `sleep 0.6; rm -f '${lock}'`], { stdio: 'ignore' });
        const ended = new Promise((res) => holder.on('exit', res));
        writeFileSync(lock, `${holder.pid}\n`);
        const t0 = Date.now();
        updateRecord(dir, '5.10', 'lab', (r) => mergeRun(r, [result('test/b.lab.test.ts')], meta));
        expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
        await ended;
        expect(Object.keys(loadRecord(dir, '5.10', 'lab').files).sort()).toEqual(['test/a.lab.test.ts', 'test/b.lab.test.ts']);
        expect(existsSync(lock)).toBe(false);
      }),
    );

    it(
      'a lock left by a process that is gone is taken over at once',
      withDir((dir) => {
        const pid = spawnSync('true').pid; // ended and reaped
        writeFileSync(join(dir, '6.12.lock'), `${pid}\n`);
        const t0 = Date.now();
        updateRecord(dir, '6.12', 'kernel', (r) => mergeRun(r, [result('test/k.kernel.test.ts')], meta), { waitMs: 5_000 });
        expect(Date.now() - t0).toBeLessThan(2_000);
        expect(Object.keys(loadRecord(dir, '6.12', 'kernel').files)).toEqual(['test/k.kernel.test.ts']);
      }),
    );

    it(
      'a lock held past the wait is a clear error naming the file and its process, and nothing is written',
      withDir(async (dir) => {
        updateRecord(dir, '6.1', 'lab', (r) => mergeRun(r, [result('test/a.lab.test.ts')], meta));
        const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
        try {
          writeFileSync(join(dir, '6.1.lock'), `${holder.pid}\n`);
          expect(() => updateRecord(dir, '6.1', 'lab', (r) => mergeRun(r, [result('test/b.lab.test.ts')], meta), { waitMs: 300 })).toThrow(
            new RegExp(`locked by process ${holder.pid} \\(${dir}/6\\.1\\.lock\\) .*not recorded`),
          );
          expect(Object.keys(loadRecord(dir, '6.1', 'lab').files)).toEqual(['test/a.lab.test.ts']);
          // another kernel's record is not held up by it
          updateRecord(dir, '6.12', 'lab', (r) => mergeRun(r, [result('test/b.lab.test.ts')], meta), { waitMs: 300 });
        } finally {
          holder.kill('SIGKILL');
        }
      }),
    );
  });
});

describe('one vitest run per part, each file recorded as it ends', () => {
  const summary = (over: Partial<ModuleSummary>): ModuleSummary => ({
    moduleId: '/repo/test/a.lab.test.ts',
    state: 'passed',
    errors: [],
    tests: [{ fullName: 'a > sends bytes', name: 'sends bytes', state: 'passed', errors: [] }],
    startTime: 1_000_000,
    endTime: 1_042_500,
    ...over,
  });
  const asReport = (...entries: unknown[]): string => JSON.stringify({ testResults: entries });

  it('a finished file’s entry reads back as its counts, failures (with why) and wall time', () => {
    const e = moduleEntry(
      summary({
        state: 'failed',
        tests: [
          { fullName: 'a > sends bytes', name: 'sends bytes', state: 'passed', errors: [] },
          { fullName: 'a > splits 90/10', name: 'splits 90/10', state: 'failed', errors: ['AssertionError: expected 503 to be 200\n    at stack'] },
          { fullName: 'a > later', name: 'later', state: 'skipped', errors: [] },
        ],
      }),
    );
    expect(e.status).toBe('failed');
    expect(fileResults(asReport(e), '/repo')).toEqual([
      {
        file: 'test/a.lab.test.ts',
        passed: 1,
        failed: 1,
        skipped: 1,
        failures: ['a > splits 90/10 — AssertionError: expected 503 to be 200'],
        seconds: 42.5,
      },
    ]);
  });

  it('a file whose beforeAll threw fails with the hook’s message; its tests that never ran count as skipped', () => {
    const e = moduleEntry(
      summary({
        state: 'failed',
        errors: ['Hook timed out in 540000ms.\nIf this is a long-running hook…'],
        tests: [{ fullName: 'a > sends bytes', name: 'sends bytes', state: 'pending', errors: [] }],
      }),
    );
    const [r] = fileResults(asReport(e), '/repo');
    expect(r).toMatchObject({ passed: 0, failed: 1, skipped: 1, failures: ['Hook timed out in 540000ms.'] });
    // an error outside the tests fails the file even when vitest's state says otherwise
    expect(moduleEntry(summary({ errors: ['boom'] })).status).toBe('failed');
    expect(moduleEntry(summary({})).status).toBe('passed');
  });

  it('merges the entries a cut run left: each file once (a later entry replaces an earlier one in its place), a half-written one left out and counted', () => {
    const a = JSON.stringify(moduleEntry(summary({})));
    const b = JSON.stringify(moduleEntry(summary({ moduleId: '/repo/test/b.lab.test.ts' })));
    const aAgain = JSON.stringify(moduleEntry(summary({ state: 'failed', errors: ['x'] })));
    const merged = mergeFileEntries([a, b, '{"name":"/repo/test/c.lab', aAgain]);
    expect(merged?.unreadable).toBe(1);
    const files = fileResults(merged?.report ?? '', '/repo');
    expect(files.map((f) => [f.file, f.failed])).toEqual([
      ['test/a.lab.test.ts', 1],
      ['test/b.lab.test.ts', 0],
    ]);
    expect(mergeFileEntries(['{"half', 'null'])).toBeUndefined();
    expect(mergeFileEntries([])).toBeUndefined();
  });

  it('runs the files in the order of the filters that picked them, stable within one, unmatched last', () => {
    const files = [
      'test/capture/capture.lab.test.ts',
      'test/lab/hints.lab.test.ts',
      'test/mesh/mesh.lab.test.ts',
      'test/mesh/waypoint.lab.test.ts',
      'test/x.lab.test.ts',
    ];
    expect(inGivenOrder(files, (f) => f, ['hints', 'test/mesh/', 'capture'])).toEqual([
      'test/lab/hints.lab.test.ts',
      'test/mesh/mesh.lab.test.ts',
      'test/mesh/waypoint.lab.test.ts',
      'test/capture/capture.lab.test.ts',
      'test/x.lab.test.ts',
    ]);
    expect(inGivenOrder(files, (f) => f, [])).toEqual(files);
  });

  it('the reporter writes each file as it ends; a run stopped in its second file keeps the first and names the second', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nm-vm-files-'));
    try {
      const mod = (id: string, state: string, tests: Array<[string, string]>) => ({
        moduleId: `/repo/${id}`,
        state: () => state,
        errors: () => [],
        children: {
          allTests: () =>
            tests.map(([name, s]) => ({
              fullName: `f > ${name}`,
              name,
              result: () => ({ state: s, errors: s === 'failed' ? [{ message: 'why' }] : undefined }),
            })),
        },
      });
      const r = new FileReporter(dir);
      writeFileSync(join(dir, 'release'), '5.10.0-46-amd64\n');
      const first = mod('test/a.lab.test.ts', 'passed', [
        ['one', 'passed'],
        ['two', 'passed'],
      ]);
      r.onTestModuleStart(
        mod('test/a.lab.test.ts', 'pending', [
          ['one', 'pending'],
          ['two', 'pending'],
        ]),
      );
      expect(outcomeFrom(dir, '5.10', 'lab', '/repo', 1500, 'tcg').error).toBe(
        'the lab tier left no file result, in test/a.lab.test.ts (0 of 2 tests ended; not recorded) (see the console log)',
      );
      r.onTestModuleEnd(first);
      r.onTestModuleStart(mod('test/b.lab.test.ts', 'pending', []));
      expect(readFileEntries(dir)).toHaveLength(1);
      const cut = outcomeFrom(dir, '5.10', 'lab', '/repo', 1500, 'tcg');
      expect(cut.result).toBe('error');
      expect(cut.error).toBe('the lab tier did not finish (the VM stopped after 1 finished file(s), in test/b.lab.test.ts (0 of 0 tests ended; not recorded))');
      // the run hit its time limit: the row names the file it was cut in, not only the count
      expect(timeoutError(1500, cut)).toBe(
        'timed out after 1500 s; qemu was killed after 1 finished file(s), in test/b.lab.test.ts (0 of 0 tests ended; not recorded)',
      );
      expect(cut.files).toEqual([expect.objectContaining({ file: 'test/a.lab.test.ts', passed: 2, failed: 0 })]);
      const second = mod('test/b.lab.test.ts', 'failed', [['three', 'failed']]);
      r.onTestModuleEnd(second);
      writeFileSync(join(dir, 'tier.rc'), '1\n');
      const whole = outcomeFrom(dir, '5.10', 'lab', '/repo', 1500, 'tcg');
      expect(whole.result).toBe('failed');
      expect(whole.error).toBeUndefined();
      expect(whole.counts?.failures).toEqual(['test/b.lab.test.ts > f > three']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a file whose beforeAll threw is recorded with the hook’s error, named by its describe block (vitest keeps it on the block, not the module)', () => {
    // 6.12 at 06:27: dashboard.lab's beforeAll timed out and the matrix said only "failed outside
    // its tests (a beforeAll/afterAll hook?): the console log says why"
    const dir = mkdtempSync(join(tmpdir(), 'nm-vm-hook-'));
    try {
      writeFileSync(join(dir, 'release'), '6.12.118+deb13-amd64\n');
      const r = new FileReporter(dir);
      const mod = {
        moduleId: '/repo/test/ui/dashboard.lab.test.ts',
        state: () => 'failed',
        errors: () => [],
        children: {
          allTests: () => [{ fullName: 'ui > draws', name: 'draws', result: () => ({ state: 'skipped' }) }],
          allSuites: () => [{ fullName: '[lab] the /ui page', errors: () => [{ message: 'TimeoutError: Waiting failed: 678000ms exceeded\n    at x' }] }],
        },
      };
      r.onTestModuleStart(mod);
      r.onTestModuleEnd(mod);
      writeFileSync(join(dir, 'tier.rc'), '1\n');
      const o = outcomeFrom(dir, '6.12', 'lab', '/repo', 1500, 'tcg');
      expect(o.files).toEqual([
        expect.objectContaining({
          file: 'test/ui/dashboard.lab.test.ts',
          failed: 1,
          skipped: 1,
          failures: ['[lab] the /ui page: TimeoutError: Waiting failed: 678000ms exceeded'],
        }),
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // A module as vitest's reporter API shows it, its tests' states changeable as the run goes on.
  const liveModule = (id: string, names: string[]) => {
    const states = new Map(names.map((n) => [n, 'pending']));
    return {
      set: (name: string, state: string) => states.set(name, state),
      mod: {
        moduleId: `/repo/${id}`,
        state: () => 'pending',
        errors: () => [],
        children: {
          allTests: () =>
            names.map((name) => ({
              fullName: `f > ${name}`,
              name,
              result: () => ({ state: states.get(name) as string, errors: states.get(name) === 'failed' ? [{ message: 'expected 200, got 503' }] : undefined }),
            })),
        },
      },
    };
  };

  it('a run cut in a file’s clean-up (afterAll), after all its tests passed, records that file and says it was cut there', () => {
    // 5.10 at 02:10: protocols.lab's 5 tests had passed and its afterAll was stopping the lab's
    // processes when the run hit its limit; vitest writes a file's result only after its afterAll,
    // so the file was lost (`vm matrix`: "not run yet")
    const dir = mkdtempSync(join(tmpdir(), 'nm-vm-cut-'));
    try {
      writeFileSync(join(dir, 'release'), '5.10.0-46-amd64\n');
      const r = new FileReporter(dir);
      const a = liveModule('test/a.lab.test.ts', ['one']);
      r.onTestModuleStart(a.mod);
      a.set('one', 'passed');
      r.onTestCaseResult();
      r.onTestModuleEnd(a.mod);
      const b = liveModule('test/waypoint-path/protocols.lab.test.ts', ['h2', 'grpc', 'restart']);
      r.onTestModuleStart(b.mod);
      for (const t of ['h2', 'grpc', 'restart']) {
        b.set(t, 'passed');
        r.onTestCaseResult();
      }
      r.onHookStart({ name: 'afterAll' });
      expect(readRunningEntry(dir)).toMatchObject({ ended: 3, total: 3, closing: true });
      const cut = outcomeFrom(dir, '5.10', 'lab', '/repo', 1263, 'tcg');
      expect(cut.result).toBe('error');
      expect(cut.files?.map((f) => [f.file, f.passed, f.failed, f.skipped])).toEqual([
        ['test/a.lab.test.ts', 1, 0, 0],
        ['test/waypoint-path/protocols.lab.test.ts', 3, 0, 0],
      ]);
      const where = 'in test/waypoint-path/protocols.lab.test.ts (all 3 tests ended, cut in its clean-up (afterAll); recorded)';
      expect(cut.error).toBe(`the lab tier did not finish (the VM stopped after 1 finished file(s), ${where})`);
      expect(timeoutError(1200, cut)).toBe(`timed out after 1200 s; qemu was killed after 1 finished file(s), ${where}`);
      // the record and the matrix say the file was cut in its clean-up
      const rec = mergeRun({ kernel: '5.10', tier: 'lab', files: {} }, cut.files ?? [], { commit: 'bbbb', at: '2026-12-06T02:10:55Z' });
      const m = formatMatrix([rec], { lab: ['test/a.lab.test.ts', 'test/waypoint-path/protocols.lab.test.ts'] });
      expect(m.split('\n')[1]).toMatch(/^5\.10 +lab +passed +2\/2 +4 +0 +0 /);
      expect(m).toContain(
        '5.10 lab: CUT test/waypoint-path/protocols.lab.test.ts: all 3 tests ended; the VM stopped before the file did (cut in its clean-up (afterAll)) (bbbb, 2026-12-06T02:10:55Z)',
      );
      // once the file ends, its own entry stands and the partial one is gone
      r.onTestModuleEnd(b.mod);
      writeFileSync(join(dir, 'tier.rc'), '0\n');
      const whole = outcomeFrom(dir, '5.10', 'lab', '/repo', 1300, 'tcg');
      expect(whole.result).toBe('passed');
      expect(whole.files?.[1]?.cut).toBeUndefined();
      expect(readRunningEntry(dir)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a run cut before a file’s tests all ended does not record it (an older full result stays) unless one of them failed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nm-vm-cut-'));
    try {
      writeFileSync(join(dir, 'release'), '6.12.118+deb13-amd64\n');
      const r = new FileReporter(dir);
      const b = liveModule('test/mesh/mesh.lab.test.ts', ['one', 'two', 'three']);
      r.onTestModuleStart(b.mod);
      b.set('one', 'passed');
      r.onTestCaseResult();
      // an inner suite's afterAll does not make the file "closing" once another test ends
      r.onHookStart({ name: 'afterAll' });
      b.set('two', 'passed');
      r.onTestCaseResult();
      expect(readRunningEntry(dir)).toMatchObject({ ended: 2, total: 3, closing: false });
      const cut = outcomeFrom(dir, '6.12', 'lab', '/repo', 900, 'tcg');
      expect(cut.files).toBeUndefined();
      expect(cut.error).toBe('the lab tier left no file result, in test/mesh/mesh.lab.test.ts (2 of 3 tests ended; not recorded) (see the console log)');
      expect(timeoutError(900, cut)).toBe(`timed out after 900 s; qemu was killed (${cut.error})`);
      // a failure among the tests that ended is a result: recorded as failed, the rest skipped
      b.set('one', 'failed');
      r.onTestCaseResult();
      const failed = outcomeFrom(dir, '6.12', 'lab', '/repo', 900, 'tcg');
      expect(failed.result).toBe('failed');
      expect(failed.files).toEqual([
        expect.objectContaining({ file: 'test/mesh/mesh.lab.test.ts', passed: 1, failed: 1, skipped: 1, cut: '2 of 3 tests ended when the VM stopped' }),
      ]);
      expect(failed.error).toBe(
        'the lab tier did not finish (the VM stopped after 0 finished file(s), in test/mesh/mesh.lab.test.ts (2 of 3 tests ended, with a failure; recorded))',
      );
      // a file with no tests at all (or not collected) is never recorded from a cut
      expect(cutFile({ entry: moduleEntry(summary({ tests: [] })), ended: 0, total: 0, closing: false }).entry).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it(
    'with vitest itself: a run killed while a file’s afterAll runs keeps that file’s passed tests, and the file before it',
    async () => {
      // the reporter through vitest's real reporter API (the order of test results and hooks),
      // the run killed as the runner kills qemu at its limit
      const dir = mkdtempSync(join(tmpdir(), 'nm-vm-vitest-'));
      const out = join(dir, 'out');
      const repo = join(__dirname, '..');
      let child: ReturnType<typeof spawn> | undefined;
      try {
        symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'));
        writeFileSync(
          join(dir, 'vitest.config.mjs'),
          `import { defineConfig } from 'vitest/config';\nimport { FileReporter } from ${JSON.stringify(join(repo, 'vm/file-report.ts'))};\n` +
            `export default defineConfig({ cacheDir: ${JSON.stringify(join(dir, 'cache'))}, test: { include: ['*.cut.test.ts'], fileParallelism: false, sequence: { shuffle: false }, hookTimeout: 600000, reporters: [new FileReporter(${JSON.stringify(out)})] } });\n`,
        );
        // (vitest runs larger files first when it knows no durations: a is padded to run first)
        writeFileSync(join(dir, 'a.cut.test.ts'), `import { it } from 'vitest';\nit('first', () => {});\n// ${'x'.repeat(2000)}\n`);
        writeFileSync(
          join(dir, 'b.cut.test.ts'),
          `import { afterAll, describe, it } from 'vitest';\ndescribe('lab', () => {\n  afterAll(() => new Promise(() => {}));\n  it('one', () => {});\n  it('two', () => {});\n});\n`,
        );
        child = spawn(
          process.execPath,
          [join(repo, 'node_modules/vitest/vitest.mjs'), 'run', '--root', dir, '--config', join(dir, 'vitest.config.mjs'), 'a.cut', 'b.cut'],
          {
            cwd: dir,
            stdio: 'ignore',
            detached: true,
            env: { ...process.env, CI: 'true' },
          },
        );
        const deadline = Date.now() + scaled(60_000);
        while (!readRunningEntry(out)?.closing) {
          if (Date.now() > deadline) throw new Error(`vitest never reached the afterAll of b.cut.test.ts: ${JSON.stringify(readFileEntries(out))}`);
          if (child.exitCode !== null) throw new Error(`vitest exited (${child.exitCode}) before the afterAll`);
          await new Promise((res) => setTimeout(res, 100));
        }
        process.kill(-(child.pid as number), 'SIGKILL');
        writeFileSync(join(out, 'release'), 'x\n');
        const row = outcomeFrom(out, 'k', 'lab', dir, 10, 'tcg');
        expect(row.files?.map((f) => [f.file, f.passed, f.failed, f.skipped])).toEqual([
          ['a.cut.test.ts', 1, 0, 0],
          ['b.cut.test.ts', 2, 0, 0],
        ]);
        expect(row.error).toBe(
          'the lab tier did not finish (the VM stopped after 1 finished file(s), in b.cut.test.ts (all 2 tests ended, cut in its clean-up (afterAll); recorded))',
        );
      } finally {
        if (child?.pid && child.exitCode === null) {
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        rmSync(dir, { recursive: true, force: true });
      }
    },
    scaled(90_000),
  );

  it('each run’s console log has its own name; a passing run’s takes the short name', () => {
    const p = runLogPaths('/c/logs', '5.10', 'lab', new Date('2026-12-06T00:15:07.123Z'), 4242);
    expect(p).toEqual({
      log: '/c/logs/5.10-lab-20261206T001507Z-4242.log',
      kept: '/c/logs/5.10-lab-20261206T001507Z-4242-kept',
      passedLog: '/c/logs/5.10-lab.log',
      passedKept: '/c/logs/5.10-lab-kept',
    });
    expect(runLogPaths('/c/logs', '5.10', 'lab', new Date('2026-12-06T00:15:08Z'), 4242).log).not.toBe(p.log);
  });
});
