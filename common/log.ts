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

/** `sync: false`: lines are held until this many bytes are buffered (or ASYNC_FLUSH_MS passed). */
export const ASYNC_BUFFER_BYTES = 8192;
/**
 * `sync: false`: buffered lines are written at the latest this long after they were logged (short:
 * whoever reads the log after seeing what a line reports, a test or an operator, finds it there).
 */
export const ASYNC_FLUSH_MS = 10;

/**
 * `sync: false` (a process that logs per connection, e.g. the node proxy's access log): lines are
 * buffered and written in the background, ASYNC_BUFFER_BYTES at a time or after ASYNC_FLUSH_MS,
 * instead of one write(2) per line (a background write per access-log line was still a tenth of a
 * node proxy's cost per new connection); what is still buffered is flushed when the process exits.
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
  const dest = pino.destination({ dest: 2, sync, minLength: ASYNC_BUFFER_BYTES });
  // A line that stays buffered is written ASYNC_FLUSH_MS later: one timer per batch, none while
  // idle (sonic-boom's own periodicFlush ticks, and writes, even when nothing is buffered).
  // _len / _writing / destroyed: the bytes sonic-boom holds and its state (not in its typings).
  const held = dest as unknown as { _len?: number; _writing?: boolean; destroyed?: boolean };
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    timer = setTimeout(flush, ASYNC_FLUSH_MS);
    timer.unref();
  };
  const flush = (): void => {
    timer = undefined;
    if (held._len === 0 || held.destroyed) return;
    // while a write is in flight flush() does nothing, and what is left below minLength after it
    // stays held: try again
    if (held._writing) arm();
    else dest.flush();
  };
  const write = dest.write.bind(dest);
  dest.write = (data: string): boolean => {
    const ok = write(data);
    if (timer === undefined && held._len !== 0) arm();
    return ok;
  };
  dest.once('close', () => clearTimeout(timer));
  return pino(options, dest);
}
