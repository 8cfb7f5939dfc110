// Large request bodies are parsed in a worker thread: the event loop keeps turning meanwhile, a
// parse that runs over its time limit is stopped (and the worker replaced), and bodies beyond the
// queue are refused. Runs the build's parse-worker.js (dist/), as the control plane does.
import { afterEach, describe, expect, it } from 'vitest';
import { DocumentError, parseDocuments } from './documents';
import { ParseBusyError, ParsePool } from './parse-pool';

/** About `kb` KiB of Workloads as multi-document YAML. */
export function workloadsYaml(kb: number): string {
  let text = '';
  for (let i = 0; text.length < kb * 1024; i++) {
    text += `apiVersion: nodemesh.io/v1alpha1\nkind: Workload\nmetadata:\n  name: w-${i}\n  namespace: default\n  labels: {app: web}\nspec:\n  node: node-1\n  addresses: [10.200.${(i >> 8) & 255}.${i & 255}]\n---\n`;
  }
  return text;
}

/** Runs `work` while a 10 ms timer ticks; returns the longest gap between ticks (ms). */
async function longestStall<T>(work: Promise<T>): Promise<{ result: PromiseSettledResult<T>; stallMs: number; tookMs: number }> {
  const start = performance.now();
  let last = start;
  let stallMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 10);
  const [result] = await Promise.allSettled([work]);
  clearInterval(timer);
  return { result, stallMs: Math.max(stallMs, performance.now() - last), tookMs: performance.now() - start };
}

let pool: ParsePool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

describe('parsing request bodies off the event loop', () => {
  it('parses a 1 MiB body in the worker to the same objects, while timers keep firing', async () => {
    pool = new ParsePool();
    const text = workloadsYaml(1024);
    const { result, stallMs, tookMs } = await longestStall(pool.parse(text, 'body'));
    expect(result.status).toBe('fulfilled');
    const docs = (result as PromiseFulfilledResult<unknown[]>).value;
    expect(docs).toEqual(parseDocuments(text, 'body'));
    // The parse takes seconds; the loop only pays for copying the result back.
    expect(stallMs).toBeLessThan(Math.max(400, tookMs / 3));
  }, 60_000);

  it('stops a parse that runs over its time limit (400 with the reason), then parses the next body', async () => {
    pool = new ParsePool({ timeoutMs: 100, inlineBytes: 0 });
    await expect(pool.parse(workloadsYaml(2048), 'request body')).rejects.toThrow(
      new DocumentError('request body: parsing took longer than 0.1 s and was stopped; split it into smaller applies'),
    );
    const small = 'apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n';
    await expect(pool.parse(small, 'b')).resolves.toEqual([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a' } }]);
  }, 60_000);

  it("returns the parser's refusals from the worker as DocumentError", async () => {
    pool = new ParsePool({ inlineBytes: 0 });
    await expect(pool.parse('['.repeat(1000) + ']'.repeat(1000), 'body')).rejects.toThrow(DocumentError);
    await expect(pool.parse('a: 1\na: 2\n', 'body')).rejects.toThrow(/"a" appears twice/);
  });

  it('refuses bodies beyond the queue (503) instead of holding them', async () => {
    pool = new ParsePool({ inlineBytes: 0, maxQueued: 1 });
    const text = workloadsYaml(256);
    const running = pool.parse(text, 'one');
    const queued = pool.parse(text, 'two');
    await expect(pool.parse(text, 'three')).rejects.toThrow(ParseBusyError);
    expect(await running).toHaveLength(await queued.then((d) => d.length));
  }, 60_000);
});
