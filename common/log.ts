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

/**
 * `sync: false` (a process that logs per connection, e.g. the node proxy's access log): a line is
 * written by a background write, and lines logged while one is in flight go out together in the
 * next, instead of one blocking write(2) on the event loop per line; what is still buffered is
 * flushed when the process exits.
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
  return pino(options, pino.destination({ dest: 2, sync }));
}
