// BpfLink: an attachment of a program to a cgroup or a netns (a bpf_link). It stays attached
// while an fd or a pin holds it: pin it to survive the process, detach() to remove it for good.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { call } from './binding';

export interface LinkInfo {
  id: number;
  progId: number;
  attachType?: string;
  cgroupId?: bigint;
  netnsIno?: number;
}

export class BpfLink {
  private closed = false;

  /** Takes ownership of fd. */
  constructor(
    private readonly linkFd: number,
    readonly label: string,
  ) {}

  static fromPin(path: string): BpfLink {
    return new BpfLink(
      call((b) => b.objGet(path)),
      path,
    );
  }

  get fd(): number {
    return this.linkFd;
  }

  info(): LinkInfo {
    const i = call((b) => b.linkInfo(this.linkFd));
    return { id: i.id, progId: i.progId, attachType: i.attachType, cgroupId: i.cgroupId, netnsIno: i.netnsIno };
  }

  pin(path: string): void {
    mkdirSync(dirname(path), { recursive: true });
    call((b) => b.objPin(this.linkFd, path));
  }

  /** Detaches the program now, even if pins or other fds still refer to the link, and closes. */
  detach(): void {
    if (this.closed) return;
    call((b) => b.linkDetach(this.linkFd));
    this.close();
  }

  /** Closes this fd; the attachment stays while a pin holds it. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    call((b) => b.closeFd(this.linkFd));
  }
}
