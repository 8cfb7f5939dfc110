// A benchmark's server side in a child process (the same script run with --server), so its memory
// and CPU can be measured alone; messages in both directions over the IPC channel.
import { fork, type ChildProcess } from 'node:child_process';

export const SERVER_FLAG = '--server';

/** True in the child: the script was started by ServerProcess. */
export function isServerProcess(): boolean {
  return process.argv.includes(SERVER_FLAG);
}

/** The script's own arguments, without the server flag. */
export function benchArgs(): string[] {
  return process.argv.slice(2).filter((a) => a !== SERVER_FLAG);
}

/** Send a message from the child to the parent. */
export function toParent<M>(message: M): void {
  process.send!(message);
}

export class ServerProcess<FromServer extends { kind: string }, ToServer extends { kind: string }> {
  private readonly child: ChildProcess;
  private readonly messages: FromServer[] = [];
  private wake: (() => void) | undefined;

  /** Fork `script` (the caller's __filename) with the same arguments and --server, with --expose-gc. */
  constructor(script: string) {
    this.child = fork(script, [...process.argv.slice(2), SERVER_FLAG], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: FromServer) => {
      this.messages.push(m);
      this.wake?.();
    });
  }

  send(message: ToServer): void {
    this.child.send(message);
  }

  /** The next message of this kind (earlier ones of other kinds stay queued). */
  async receive<K extends FromServer['kind']>(kind: K): Promise<Extract<FromServer, { kind: K }>> {
    for (;;) {
      const i = this.messages.findIndex((m) => m.kind === kind);
      if (i >= 0) return this.messages.splice(i, 1)[0] as Extract<FromServer, { kind: K }>;
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  /** Send `stop` and wait for the child to exit; SIGKILL after 5 s. */
  async stop(stop: ToServer): Promise<void> {
    this.child.send(stop);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        resolve();
      }, 5000);
      this.child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
