// Parsing request bodies off the event loop. The YAML parser costs ~5 ms per KiB here (an 8 MiB
// body: 20–40 s on a loaded machine), and the config API must keep answering health checks,
// watches and other requests meanwhile: bodies larger than `inlineBytes` are parsed in one
// worker thread, one at a time, each within `timeoutMs` (the worker is terminated and replaced
// when a parse runs over, and the request gets 400). At most `maxQueued` bodies wait; more get
// 503 so that waiting bodies cannot pile up memory.
//
// The worker runs parse-worker.js next to this file; when this file runs from TypeScript source
// (the unit tests), it runs the build's copy in dist/ (scripts/setup.sh builds it first). With
// neither, it parses inline and says so once.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../../common/log';
import { DocumentError, parseDocuments } from './documents';
import type { ParseAnswer } from './parse-worker';

export interface ParsePoolOptions {
  /** Bodies up to this size are parsed inline (default 32 KiB: well under 0.2 s). */
  readonly inlineBytes?: number;
  /** A parse running longer is stopped (default 30 s). */
  readonly timeoutMs?: number;
  /** Bodies waiting for the worker, beyond the one it parses (default 4). */
  readonly maxQueued?: number;
  readonly log?: Logger;
}

export const PARSE_LIMITS = { inlineBytes: 32 * 1024, timeoutMs: 30_000, maxQueued: 4 } as const;

/** Too many bodies are waiting to be parsed (503: retry later). */
export class ParseBusyError extends Error {}

interface Job {
  readonly text: string;
  readonly source: string;
  resolve(docs: unknown[]): void;
  reject(err: Error): void;
}

function workerScript(): string | undefined {
  const here = join(__dirname, 'parse-worker.js');
  if (existsSync(here)) return here;
  const built = join(__dirname, '..', '..', 'dist', 'control', 'api', 'parse-worker.js');
  return existsSync(built) ? built : undefined;
}

export class ParsePool {
  private readonly inlineBytes: number;
  private readonly timeoutMs: number;
  private readonly maxQueued: number;
  private worker: Worker | undefined;
  private running: Job | undefined;
  private runningOn: Worker | undefined;
  private readonly queue: Job[] = [];
  private readonly script = workerScript();
  private warned = false;

  constructor(private readonly options: ParsePoolOptions = {}) {
    this.inlineBytes = options.inlineBytes ?? PARSE_LIMITS.inlineBytes;
    this.timeoutMs = options.timeoutMs ?? PARSE_LIMITS.timeoutMs;
    this.maxQueued = options.maxQueued ?? PARSE_LIMITS.maxQueued;
  }

  /** parseDocuments, off the event loop for large texts. Rejects with DocumentError or ParseBusyError. */
  parse(text: string, source: string): Promise<unknown[]> {
    if (text.length <= this.inlineBytes || !this.script) {
      if (!this.script && !this.warned) {
        this.warned = true;
        this.options.log?.warn('parse-worker.js not found (run scripts/setup.sh to build); large request bodies are parsed on the event loop');
      }
      try {
        return Promise.resolve(parseDocuments(text, source));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const inFlight = this.queue.length + (this.running ? 1 : 0);
    if (inFlight >= this.maxQueued + 1) {
      return Promise.reject(new ParseBusyError(`${inFlight} large request bodies are already being parsed; retry shortly`));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ text, source, resolve, reject });
      this.next();
    });
  }

  /** Stops the worker; waiting parses fail. */
  async close(): Promise<void> {
    for (const job of this.queue.splice(0)) job.reject(new ParseBusyError('the config API is shutting down'));
    this.running?.reject(new ParseBusyError('the config API is shutting down'));
    this.running = undefined;
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }

  private spawn(): Worker {
    const w = new Worker(this.script!);
    w.unref();
    w.on('error', (err) => this.finish(w, { ok: false, document: false, message: `the parser failed: ${err.message}` }));
    w.on('exit', (code) => {
      if (this.worker === w) {
        this.worker = undefined;
        // It never became ready: fail what waits rather than respawning in a loop.
        if (!this.workerReady) for (const job of this.queue.splice(0)) job.reject(new Error(`the body parser thread could not start (exit code ${code})`));
      }
      if (this.running) this.finish(w, { ok: false, document: false, message: 'the parser stopped' });
    });
    w.on('message', (answer: ParseAnswer | 'ready') => {
      if (answer !== 'ready') this.finish(w, answer);
      else if (this.worker === w) {
        this.workerReady = true;
        this.next();
      }
    });
    return w;
  }

  private timer: NodeJS.Timeout | undefined;
  private workerReady = false;

  private next(): void {
    if (this.running || this.queue.length === 0) return;
    if (!this.worker) {
      this.workerReady = false;
      this.worker = this.spawn();
      this.worker.ref(); // keep the process alive while a request waits for it
    }
    if (!this.workerReady) return; // next() again on 'ready'
    const job = this.queue.shift()!;
    this.running = job;
    const w = this.worker;
    this.runningOn = w;
    w.ref(); // keep the process alive while a request waits for it
    this.timer = setTimeout(() => {
      this.worker = undefined;
      void w.terminate();
      this.finish(w, {
        ok: false,
        document: true,
        message: `${job.source}: parsing took longer than ${this.timeoutMs / 1000} s and was stopped; split it into smaller applies`,
      });
    }, this.timeoutMs);
    w.postMessage({ text: job.text, source: job.source });
  }

  private finish(w: Worker, answer: ParseAnswer): void {
    const job = this.running;
    if (!job || w !== this.runningOn) return; // a replaced worker's late news
    this.running = undefined;
    this.runningOn = undefined;
    clearTimeout(this.timer);
    w.unref();
    if (answer.ok) job.resolve(answer.docs);
    else job.reject(answer.document ? new DocumentError(answer.message) : new Error(answer.message));
    this.next();
  }
}
