// The enrolment records file: written atomically after every change, read at start-up to adopt
// what a previous run left pinned. It lives on tmpfs (/run), like the bpffs pins, so both vanish
// together at reboot.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { EnrolmentRecord } from './plan';

interface RecordsFile {
  version: 1;
  records: EnrolmentRecord[];
}

export function readRecords(path: string): EnrolmentRecord[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const parsed = JSON.parse(text) as RecordsFile;
  if (parsed.version !== 1 || !Array.isArray(parsed.records)) {
    throw new Error(`enrolment records ${path} have an unknown format; remove the node's pins with 'nodemesh node-proxy --teardown' and start again`);
  }
  return parsed.records;
}

export function writeRecords(path: string, records: readonly EnrolmentRecord[]): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  const body: RecordsFile = { version: 1, records: [...records] };
  writeFileSync(tmp, JSON.stringify(body, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, path);
}
