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

/**
 * fd 2 with the lines batched here (see above) and each batch handed to sonic-boom in sync mode
 * without a buffer of its own, which writes it at once (one write(2); partial writes and EAGAIN
 * retried by sonic-boom). The batch is counted here, so nothing reads sonic-boom's internals.
 */
function batchedStderr(): pino.DestinationStream {
  const out = pino.destination({ dest: 2, sync: true });
  let held: string[] = [];
  let bytes = 0;
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (bytes === 0) return;
    const batch = held.length === 1 ? held[0] : held.join('');
    held = [];
    bytes = 0;
    out.write(batch);
  };
  // pino flushes a destination at exit only in async mode
  process.once('exit', flush);
  return {
    write(line: string): void {
      held.push(line);
      bytes += line.length;
      if (bytes >= BATCH_BYTES) flush();
      else if (timer === undefined) {
        timer = setTimeout(flush, BATCH_FLUSH_MS);
        timer.unref();
      }
    },
  };
}
