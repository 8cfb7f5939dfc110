// `npm run fuzz -- [--minutes N] [--inputs N] [--target NAME]… [--seed S]`: the long fuzz run.
// The time is shared among the targets (a target that stops early at --inputs leaves its time to
// the ones after it); each runs in a child process of its own with a watchdog, so a hang (an input
// that never returns) is reported as one instead of stopping the run. Prints, per target, how many
// inputs ran, inputs per second and the first failure with its seed and path (replay it in the
// unit test with NM_FUZZ_SEED, or here with --seed).
//
// The workers run with Error.stackTraceLimit = 0: the code under test throws its documented
// refusals (ValidationError, InvalidBatchError, DocumentError) for most generated inputs, and
// capturing their stacks was the largest single cost of the translate target (profiled: ~12 % of
// its time in the two error constructors). A failure is reported by its message, seed and path;
// replaying it (NM_FUZZ_SEED in the unit test) gives the full stack.
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { TARGETS } from './targets';

interface Report {
  readonly target: string;
  readonly inputs: number;
  readonly ms: number;
  readonly failure?: string;
}

const CHUNK = 5_000;

async function worker(name: string, ms: number, maxInputs: number, seed: number | undefined): Promise<Report> {
  const t = TARGETS.find((x) => x.name === name);
  if (!t) throw new Error(`no fuzz target ${name}`);
  Error.stackTraceLimit = 0;
  const started = performance.now();
  let inputs = 0;
  let round = 0;
  while (performance.now() - started < ms && inputs < maxInputs) {
    const left = Math.max(1, ms - (performance.now() - started));
    const params = {
      numRuns: Math.min(CHUNK, maxInputs - inputs),
      seed: seed === undefined ? undefined : seed + round,
      interruptAfterTimeLimit: left,
      markInterruptAsFailure: false,
    };
    round++;
    const details = t.async
      ? await fc.check(
          fc.asyncProperty(t.arbitrary, async (x) => void (await t.check(x))),
          params,
        )
      : fc.check(
          fc.property(t.arbitrary, (x) => void t.check(x)),
          params,
        );
    inputs += details.numRuns;
    // fast-check counts a run interrupted (by the time limit) before any input passed as failed,
    // with no counterexample: the last chunk of a slow (async) target, not a failure.
    if (details.failed && !(details.interrupted && details.counterexample === null)) {
      const why = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
      return {
        target: name,
        inputs,
        ms: performance.now() - started,
        failure: `seed ${details.seed} path ${details.counterexamplePath}: ${why.slice(0, 500)}\ncounterexample: ${JSON.stringify(details.counterexample)?.slice(0, 1000)}`,
      };
    }
  }
  return { target: name, inputs, ms: performance.now() - started };
}

function option(argv: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) if (argv[i] === name && argv[i + 1] !== undefined) out.push(argv[++i]!);
  return out;
}

async function main(argv: string[]): Promise<number> {
  const workerName = option(argv, '--worker')[0];
  const seedText = option(argv, '--seed')[0];
  const seed = seedText === undefined ? undefined : Number(seedText);
  if (workerName) {
    const r = await worker(workerName, Number(option(argv, '--ms')[0] ?? 10_000), Number(option(argv, '--inputs')[0] ?? Number.POSITIVE_INFINITY), seed);
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return 0;
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(
      `usage: npm run fuzz -- [--minutes N] [--inputs N] [--target NAME]… [--seed S]\ntargets:\n${TARGETS.map((t) => `  ${t.name.padEnd(16)} ${t.what}`).join('\n')}\n`,
    );
    return 0;
  }
  const minutes = Number(option(argv, '--minutes')[0] ?? 1);
  if (!(minutes > 0)) throw new Error(`--minutes must be a positive number, got ${option(argv, '--minutes')[0]}`);
  const wanted = option(argv, '--target');
  const unknown = wanted.filter((w) => !TARGETS.some((t) => t.name === w));
  if (unknown.length) throw new Error(`no fuzz target ${unknown.join(', ')} (have: ${TARGETS.map((t) => t.name).join(', ')})`);
  const inputsText = option(argv, '--inputs')[0];
  const maxInputs = inputsText === undefined ? undefined : Number(inputsText);
  if (maxInputs !== undefined && !(Number.isInteger(maxInputs) && maxInputs > 0)) throw new Error(`--inputs must be a positive integer, got ${inputsText}`);
  // in the order named (a slow target named last gets the time the fast ones before it leave)
  const targets = wanted.length === 0 ? [...TARGETS] : wanted.map((w) => TARGETS.find((t) => t.name === w)!);
  const deadline = performance.now() + minutes * 60_000;
  let failed = 0;
  process.stdout.write(
    `fuzz: ${targets.length} targets, ${minutes} min shared${maxInputs === undefined ? '' : `, each stops at ${maxInputs} inputs`}${seed === undefined ? '' : `, seed ${seed}`}\n`,
  );
  for (const [i, t] of targets.entries()) {
    const ms = Math.max(1_000, Math.round((deadline - performance.now()) / (targets.length - i)));
    const args = [
      __filename,
      '--worker',
      t.name,
      '--ms',
      String(ms),
      ...(maxInputs === undefined ? [] : ['--inputs', String(maxInputs)]),
      ...(seed === undefined ? [] : ['--seed', String(seed)]),
    ];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: ms + 120_000, maxBuffer: 16 << 20 });
    const line = r.stdout?.trim().split('\n').pop();
    if (r.error || r.status !== 0 || !line) {
      failed++;
      const how =
        r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT'
          ? 'HUNG (no answer 120 s past its budget)'
          : `crashed (${r.signal ?? `exit ${r.status}`})`;
      process.stdout.write(`${t.name.padEnd(16)} ${how}\n${(r.stderr ?? '').slice(-2000)}\n`);
      continue;
    }
    const rep = JSON.parse(line) as Report;
    const rate = rep.inputs / (rep.ms / 1000);
    process.stdout.write(
      `${t.name.padEnd(16)} ${String(rep.inputs).padStart(10)} inputs  ${(rep.ms / 1000).toFixed(0).padStart(5)} s  ${rate.toFixed(0).padStart(7)} inputs/s  ${rep.failure ? `FAILED: ${rep.failure}` : 'no failure'}\n`,
    );
    if (rep.failure) failed++;
  }
  return failed ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`fuzz: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  },
);
