// pino logs for every process, on stderr so stdout stays free for command output.
// NODEMESH_LOG_LEVEL (or --log-level where a command offers it) sets the level;
// NODEMESH_LOG_FORMAT (or the global --log-format flag) picks `json` (the default: one JSON object
// per line, what log collectors and the lab read) or `text` (one human-readable line per record).
// Timestamps are ISO 8601 in UTC either way.
import pino, { type Logger } from 'pino';

export type { Logger };

export const LOG_FORMATS = ['json', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** The format NODEMESH_LOG_FORMAT asks for; an unknown value is an error a user can act on. */
export function logFormat(env: NodeJS.ProcessEnv = process.env): LogFormat {
  const f = env.NODEMESH_LOG_FORMAT ?? 'json';
  if ((LOG_FORMATS as readonly string[]).includes(f)) return f as LogFormat;
  throw new Error(`NODEMESH_LOG_FORMAT (or --log-format) must be json or text, got "${f}"`);
}

/** `sync: false`: lines are held until this many bytes are buffered (or BATCH_FLUSH_MS passed). */
export const BATCH_BYTES = 8192;
/**
 * `sync: false`: buffered lines are written at the latest this long after they were logged (short:
 * whoever reads the log after seeing what a line reports, a test or an operator, finds it there).
 */
export const BATCH_FLUSH_MS = 10;

/**
 * `sync: false` (a process that logs per connection, e.g. the node proxy's access log): lines are
 * buffered and written together, BATCH_BYTES at a time or BATCH_FLUSH_MS after the first of them,
 * instead of a write per line. Each batch is one write(2) made on the spot, never a background
 * write: a background write still queued when the process exits is lost (its bytes are neither
 * written nor in the buffer any more), which is how an earlier attempt lost lines under load. What
 * is buffered at exit is written then; only a SIGKILL loses the last BATCH_FLUSH_MS of lines.
 */
export function createLogger(
  component: string,
  level = process.env.NODEMESH_LOG_LEVEL ?? 'info',
  format: LogFormat = logFormat(),
  o: { sync?: boolean } = {},
): Logger {
  const sync = o.sync ?? true;
  const options = { name: component, level, base: { component, pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (format === 'text') {
    // loaded only for text logs: the node proxy and the control plane log JSON and so never pay
    // for it (~1 MiB of a long-running process's memory, its module tree included)
    const pretty = require('pino-pretty') as typeof import('pino-pretty');
    return pino(
      options,
      pretty({ destination: 2, sync, colorize: false, translateTime: false, singleLine: true, ignore: 'pid,hostname,name', messageKey: 'msg' }),
    );
  }
  if (sync) return pino(options, pino.destination({ dest: 2, sync }));
  return pino(options, batchedStderr());
}

/** fd 2 through sonic-boom in sync mode with a buffer, flushed by a timer and at exit (see above). */
function batchedStderr(): ReturnType<typeof pino.destination> {
  const dest = pino.destination({ dest: 2, sync: true, minLength: BATCH_BYTES });
  // _len: the bytes sonic-boom holds (not in its typings). In sync mode flush() writes one buffer
  // of at most 16 KiB at once; a burst may have left more than one.
  const held = dest as unknown as { _len: number; destroyed?: boolean };
  const flushAll = (): void => {
    for (let n = 0; held._len > 0 && !held.destroyed && n < 1024; n++) dest.flush();
  };
  let timer: NodeJS.Timeout | undefined;
  const write = dest.write.bind(dest);
  dest.write = (data: string): boolean => {
    const ok = write(data);
    if (timer === undefined && held._len > 0) {
      timer = setTimeout(() => {
        timer = undefined;
        flushAll();
      }, BATCH_FLUSH_MS);
      timer.unref();
    }
    return ok;
  };
  // pino flushes a destination at exit only in async mode
  process.once('exit', () => {
    if (timer) clearTimeout(timer);
    flushAll();
  });
  return dest;
}
