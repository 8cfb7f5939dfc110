// pino JSON logs for every process. NODEMESH_LOG_LEVEL (or --log-level where a command offers it)
// sets the level; logs go to stderr so stdout stays free for command output.
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(component: string, level = process.env.NODEMESH_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: component, level, base: { component, pid: process.pid } }, pino.destination(2));
}
