// The lab restarts its control plane and node proxies when they die, as kubelet restarts a pod's
// containers: the lab controller (`nodemesh lab controller`) checks the recorded processes every
// 200 ms and starts a dead one again after a back-off that doubles with each consecutive crash
// (0.5 s, 1 s, 2 s … at most 30 s) and is forgotten once the process has run for 60 s. A process
// is supervised only once it has been seen running (lab up starts it first), so the supervisor
// never races lab up. Restart counts and back-offs are kept in <lab state dir>/supervisor.json,
// which `lab status` shows; `lab down` stops the controller (and so the supervision) first.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../common/log';
import { forgetLabProcess, labStateDir, readLabProcesses, type LabProcess } from './state';
import { isSameProcess } from './sys';

export interface SupervisorLimits {
  /** Back-off before the first restart after a crash (doubles per consecutive crash). */
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  /** A process that ran this long has its back-off reset. */
  readonly resetAfterMs: number;
}

export const SUPERVISOR_LIMITS: SupervisorLimits = { initialBackoffMs: 500, maxBackoffMs: 30_000, resetAfterMs: 60_000 };

/** What the supervisor knows of one component (kept in supervisor.json). */
export interface SupervisedRecord {
  readonly name: string;
  readonly place: string;
  /** Seen running at least once (before that it is lab up's to start). */
  seen: boolean;
  restarts: number;
  /** The back-off the next crash waits (0: the initial one). */
  backoffMs: number;
  /** When a dead process will be started again (ms since the epoch). */
  nextStartAt?: number;
  lastRestartAt?: string;
}

export type Step = 'none' | 'wait' | 'start';

/**
 * The supervisor's decision for one component, without I/O: `running` is its live process (with
 * its start time, ms since the epoch) or undefined. Mutates `rec`.
 */
export function supervise(
  rec: SupervisedRecord,
  running: { startedAtMs: number } | undefined,
  now: number,
  limits: SupervisorLimits = SUPERVISOR_LIMITS,
): Step {
  if (running) {
    rec.seen = true;
    rec.nextStartAt = undefined;
    if (rec.backoffMs !== 0 && now - running.startedAtMs >= limits.resetAfterMs) rec.backoffMs = 0;
    return 'none';
  }
  if (!rec.seen) return 'none';
  if (rec.nextStartAt === undefined) {
    const delay = rec.backoffMs || limits.initialBackoffMs;
    rec.nextStartAt = now + delay;
    rec.backoffMs = Math.min(delay * 2, limits.maxBackoffMs);
    return 'wait';
  }
  if (now < rec.nextStartAt) return 'wait';
  rec.nextStartAt = undefined;
  rec.restarts++;
  rec.lastRestartAt = new Date(now).toISOString();
  return 'start';
}

export interface SupervisedComponent {
  /** The recorded process name (`control-plane`, `node-proxy`). */
  readonly name: string;
  /** Where it runs (`control`, a node). */
  readonly place: string;
  /** Starts it again (recorded by the lab as it was first). */
  start(): void;
}

export const supervisorFile = (lab: string): string => join(labStateDir(lab), 'supervisor.json');

/** The supervisor's records ([] when none). */
export function readSupervisor(lab: string): SupervisedRecord[] {
  try {
    const parsed = JSON.parse(readFileSync(supervisorFile(lab), 'utf8')) as { components?: SupervisedRecord[] };
    return Array.isArray(parsed.components) ? parsed.components : [];
  } catch {
    return [];
  }
}

const keyOf = (c: { name: string; place: string }): string => `${c.name}@${c.place}`;

export class LabSupervisor {
  private readonly records = new Map<string, SupervisedRecord>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly lab: string,
    private readonly components: readonly SupervisedComponent[],
    private readonly log: Logger,
    private readonly limits: SupervisorLimits = SUPERVISOR_LIMITS,
  ) {
    // A controller restarted while the lab runs keeps the counts.
    const before = new Map(readSupervisor(lab).map((r) => [keyOf(r), r]));
    for (const c of components) {
      this.records.set(keyOf(c), before.get(keyOf(c)) ?? { name: c.name, place: c.place, seen: false, restarts: 0, backoffMs: 0 });
    }
  }

  start(checkMs = 200): void {
    this.timer = setInterval(() => this.check(), checkMs);
    this.check();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One pass over the components (exported for tests through start/stop). */
  check(now = Date.now()): void {
    const procs = readLabProcesses(this.lab);
    let changed = false;
    for (const c of this.components) {
      const rec = this.records.get(keyOf(c))!;
      const mine = procs.filter((p) => p.name === c.name && p.place === c.place);
      const live = mine.find((p) => isSameProcess(p.pid, p.startTime));
      const before = JSON.stringify(rec);
      const step = supervise(rec, live ? { startedAtMs: Date.parse(live.startedAt) } : undefined, now, this.limits);
      if (step === 'wait' && before !== JSON.stringify(rec)) {
        this.log.warn(
          { component: c.name, place: c.place, restartInMs: rec.nextStartAt! - now },
          `${c.name} on ${c.place} is not running; restarting it after the back-off`,
        );
      }
      if (step === 'start') this.restart(c, rec, mine);
      if (before !== JSON.stringify(rec)) changed = true;
    }
    if (changed) this.save();
  }

  private restart(c: SupervisedComponent, rec: SupervisedRecord, dead: readonly LabProcess[]): void {
    for (const p of dead) forgetLabProcess(this.lab, p.pid); // the dead one's record, so status shows one
    try {
      c.start();
      this.log.info({ component: c.name, place: c.place, restarts: rec.restarts, nextBackoffMs: rec.backoffMs }, `${c.name} on ${c.place} restarted`);
    } catch (err) {
      this.log.error(
        { component: c.name, place: c.place, err: (err as Error).message },
        `cannot restart ${c.name} on ${c.place}; trying again after the back-off`,
      );
    }
  }

  private save(): void {
    const file = supervisorFile(this.lab);
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify({ components: [...this.records.values()] }, null, 2) + '\n');
      renameSync(tmp, file);
    } catch (err) {
      // the lab's state dir is being removed (lab down): nothing left to record
      this.log.warn({ err: (err as Error).message }, 'cannot record the supervisor state');
    }
  }
}
