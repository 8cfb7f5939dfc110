import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { MemoryStore } from './base-store';
import { NewWarnings, StoreFollower } from './follow';

const ns = (name: string) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
const turn = () => new Promise((r) => setImmediate(r));

describe('StoreFollower', () => {
  it('publishes at start, then once per event-loop turn however many writes came in', async () => {
    const store = new MemoryStore();
    const revisions: number[] = [];
    const follower = new StoreFollower(
      () => {
        const revision = store.snapshot().revision;
        revisions.push(revision);
        return revision;
      },
      () => {},
    );
    try {
      follower.start(store);
      expect(revisions).toHaveLength(1);
      await Promise.all([store.apply(ns('a')), store.apply(ns('b')), store.apply(ns('c'))]);
      await turn();
      await turn();
      expect(revisions).toHaveLength(2);
      expect(revisions[1]).toBe(store.snapshot().revision);
      follower.stop();
      await store.apply(ns('d'));
      await turn();
      await turn();
      expect(revisions).toHaveLength(2);
    } finally {
      follower.stop();
      await store.close();
    }
  });

  it('reports a publish that throws and keeps following', async () => {
    const store = new MemoryStore();
    const errors: unknown[] = [];
    let calls = 0;
    const follower = new StoreFollower(
      () => {
        calls++;
        if (calls === 2) throw new Error('translation broke');
        return store.snapshot().revision;
      },
      (err) => errors.push(err),
    );
    try {
      follower.start(store);
      await store.apply(ns('a'));
      await turn();
      await turn();
      expect(errors.map((e) => (e as Error).message)).toEqual(['translation broke']);
      await store.apply(ns('b'));
      await turn();
      await turn();
      expect(calls).toBe(3);
    } finally {
      follower.stop();
      await store.close();
    }
  });
});

describe('NewWarnings', () => {
  it('logs a warning when it first appears, and again only after it went away', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(
          ...String(chunk)
            .split('\n')
            .filter(Boolean)
            .map((l) => (JSON.parse(l) as { msg: string }).msg),
        );
        cb();
      },
    });
    const warnings = new NewWarnings(pino({ level: 'warn' }, sink));
    warnings.log(['a', 'b'], 1);
    warnings.log(['a', 'b', 'c'], 2);
    warnings.log(['c'], 3);
    warnings.log(['a', 'c'], 4);
    expect(lines).toEqual(['a', 'b', 'c', 'a']);
  });
});
