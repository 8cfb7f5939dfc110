// A Node process's live memory after a full garbage collection, read through its inspector: tells a
// leak (what survives a full collection grows) from garbage-collector behaviour (RSS saws between
// collections while the live heap stays). SIGUSR1 opens the process's inspector on
// 127.0.0.1:9229 in its own network namespace (it stays open until the process ends: use this in a
// throw-away lab only); a helper Node started in that namespace (nsenter --net) connects to it,
// checks it reached the right process (process.pid), has it collect garbage
// (HeapProfiler.collectGarbage: a full, compacting collection) and reads process.memoryUsage().
import { execFile } from 'node:child_process';

export interface LiveMemory {
  /** MiB after the collection. */
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
  readonly rss: number;
  /** The part of heapUsed that is compiled code (V8's code space), when the process exposes it. */
  readonly codeSpace?: number;
}

// Run inside the target's netns: argv[1] = the pid expected behind 127.0.0.1:9229.
const HELPER = `
const want = Number(process.argv[1]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  let list;
  for (let i = 0; i < 50 && !list; i++) {
    try { list = await (await fetch('http://127.0.0.1:9229/json/list')).json(); } catch { await sleep(200); }
  }
  if (!list || !list[0]) throw new Error('no inspector on 127.0.0.1:9229');
  const ws = new WebSocket(list[0].webSocketDebuggerUrl);
  let id = 0;
  const waiting = new Map();
  ws.onmessage = (e) => { const m = JSON.parse(e.data); const f = waiting.get(m.id); if (f) { waiting.delete(m.id); f(m); } };
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('inspector websocket failed')); });
  const call = (method, params = {}) => new Promise((resolve) => { const i = ++id; waiting.set(i, resolve); ws.send(JSON.stringify({ id: i, method, params })); });
  const evaluate = async (expression) => JSON.parse((await call('Runtime.evaluate', { expression, returnByValue: true })).result.result.value);
  const pid = await evaluate('JSON.stringify(process.pid)');
  if (pid !== want) throw new Error('the inspector on 9229 is process ' + pid + ', not ' + want);
  await call('HeapProfiler.collectGarbage');
  const m = await evaluate('JSON.stringify(process.memoryUsage())');
  // the JIT's code (tiered up, flushed when unused) apart from the objects: it moves by itself
  const spaces = await evaluate("JSON.stringify(process.mainModule ? process.mainModule.require('node:v8').getHeapSpaceStatistics() : [])");
  const code = spaces.find((s) => s.space_name === 'code_space');
  m.codeSpace = code ? code.space_used_size : null;
  process.stdout.write(JSON.stringify(m) + '\\n');
  ws.close();
  process.exit(0);
})().catch((e) => { process.stderr.write(String(e && e.message || e) + '\\n'); process.exit(1); });
`;

const MiB = 1024 * 1024;

/** Collects garbage in process `pid` (a Node process) and reads its memory; rejects with the reason. */
export function liveMemoryAfterGc(pid: number, timeoutMs = 30_000): Promise<LiveMemory> {
  process.kill(pid, 'SIGUSR1');
  return new Promise((resolve, reject) => {
    execFile(
      'nsenter',
      [`--net=/proc/${pid}/ns/net`, '--', process.execPath, '--experimental-websocket', '--no-warnings', '-e', HELPER, String(pid)],
      { timeout: timeoutMs },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`heap probe of ${pid}: ${stderr.trim() || err.message}`));
        const m = JSON.parse(stdout) as Record<Exclude<keyof LiveMemory, 'codeSpace'>, number> & { codeSpace: number | null };
        resolve({
          heapUsed: m.heapUsed / MiB,
          heapTotal: m.heapTotal / MiB,
          external: m.external / MiB,
          arrayBuffers: m.arrayBuffers / MiB,
          rss: m.rss / MiB,
          codeSpace: m.codeSpace === null ? undefined : m.codeSpace / MiB,
        });
      },
    );
  });
}
