// The pod sandboxes the CNI plugin told this node proxy about: namespace/name -> uid, sandbox id,
// netns path and addresses. Kept in a file next to the enrolment records so that a restarted node
// proxy finds the same netns paths (the CNI's), and a DEL leaves a tombstone so that a pod whose
// sandbox was deleted is released even while some process of it still lingers.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { PodEvent } from '../cni/protocol';

/** A sandbox as the CNI ADD reported it (PodEvent minus its kind). */
export type SandboxRecord = Omit<PodEvent, 'kind'> & {
  /** Set by DEL: the sandbox is gone; the pod is not captured until a new ADD. */
  readonly released?: boolean;
  readonly at: string;
};

const keyOf = (namespace: string, name: string): string => `${namespace}/${name}`;
const MAX_RECORDS = 10_000;

export class PodRegistry {
  private readonly pods = new Map<string, SandboxRecord>();

  constructor(private readonly file?: string) {
    if (!file) return;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return;
    }
    try {
      const list = JSON.parse(text) as SandboxRecord[];
      if (Array.isArray(list))
        for (const r of list) if (r && typeof r.namespace === 'string' && typeof r.name === 'string') this.pods.set(keyOf(r.namespace, r.name), r);
    } catch {
      // A torn file (crash mid-write cannot happen with rename, but a hand edit can): start empty;
      // discovery still finds running pods.
    }
  }

  get(namespace: string, name: string): SandboxRecord | undefined {
    return this.pods.get(keyOf(namespace, name));
  }

  all(): SandboxRecord[] {
    return [...this.pods.values()];
  }

  /** An ADD: this sandbox is now the pod's. */
  added(r: Omit<SandboxRecord, 'at' | 'released'>): void {
    const key = keyOf(r.namespace, r.name);
    if (!this.pods.has(key) && this.pods.size >= MAX_RECORDS) throw new Error(`more than ${MAX_RECORDS} pod sandboxes recorded on this node`);
    this.pods.set(key, { ...r, at: new Date().toISOString() });
    this.save();
  }

  /** A DEL: tombstones the pod if the deleted sandbox is its current one (a DEL of an older sandbox changes nothing). */
  deleted(namespace: string, name: string, containerId: string): boolean {
    const key = keyOf(namespace, name);
    const r = this.pods.get(key);
    if (!r || r.containerId !== containerId) return false;
    this.pods.set(key, { ...r, released: true, at: new Date().toISOString() });
    this.save();
    return true;
  }

  /** Drops records of pods the control plane no longer has (keep(key) false). */
  prune(keep: (key: string) => boolean): void {
    let changed = false;
    for (const key of [...this.pods.keys()]) {
      if (!keep(key)) {
        this.pods.delete(key);
        changed = true;
      }
    }
    if (changed) this.save();
  }

  private save(): void {
    if (!this.file) return;
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.all(), null, 1), { mode: 0o600 });
    renameSync(tmp, this.file);
  }
}
