// BpfObject (an ELF object loaded into the kernel) and BpfProgram (one loaded program).
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { call, NativeError, type RawNativeObject } from './binding';
import { BpfLink } from './link';
import { BpfMap } from './map';

export interface ProgramSpec {
  name: string;
  section: string;
  /** libbpf's program type name: 'cgroup_sock_addr', 'sock_ops', 'sk_lookup', … */
  type: string;
  /** libbpf's attach type name: 'cgroup_inet4_connect', 'cgroup_sock_ops', 'sk_lookup', … */
  expectedAttachType: string;
}

export interface MapSpec {
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** where libbpf pinned (or reused) it, for maps declared with pinning and opened with a pinRoot */
  pinPath: string | null;
}

export interface OpenOptions {
  /** Directory on the bpffs where maps declared LIBBPF_PIN_BY_NAME are pinned, or reused if present. */
  pinRoot?: string;
}

export class BpfProgram {
  private closed = false;

  /** Takes ownership of fd. */
  constructor(
    private readonly progFd: number,
    readonly name: string,
    /** attach type used when attach*() is not given one */
    readonly expectedAttachType?: string,
  ) {}

  static fromPin(path: string, expectedAttachType?: string): BpfProgram {
    const fd = call((b) => b.objGet(path));
    const info = call((b) => b.progInfo(fd));
    return new BpfProgram(fd, info.name || path, expectedAttachType);
  }

  get fd(): number {
    return this.progFd;
  }

  info(): { name: string; id: number; type: string; tag: string } {
    return call((b) => b.progInfo(this.progFd));
  }

  /** Attaches to a cgroup v2 directory with a bpf_link. */
  attachCgroup(cgroupDir: string, attachType = this.expectedAttachType): BpfLink {
    return this.attach(cgroupDir, attachType);
  }

  /** Attaches to a network namespace (its /proc/<pid>/ns/net or /run/netns/<name> file). */
  attachNetns(netnsPath: string, attachType = this.expectedAttachType ?? 'sk_lookup'): BpfLink {
    return this.attach(netnsPath, attachType);
  }

  pin(path: string): void {
    mkdirSync(dirname(path), { recursive: true });
    call((b) => b.objPin(this.progFd, path));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    call((b) => b.closeFd(this.progFd));
  }

  private attach(target: string, attachType: string | undefined): BpfLink {
    if (!attachType) throw new TypeError(`attach program ${this.name} to ${target}: no attach type known; pass one`);
    const fd = call((b) => b.linkCreate(this.progFd, target, attachType, `program ${this.name}`));
    return new BpfLink(fd, `${this.name}@${target}`);
  }
}

export class BpfObject {
  private raw: RawNativeObject | undefined;

  private constructor(
    raw: RawNativeObject,
    readonly path: string,
  ) {
    this.raw = raw;
  }

  /** Opens and loads an object file (e.g. bpf/build/capture.o). */
  static open(path: string, options: OpenOptions = {}): BpfObject {
    if (options.pinRoot) mkdirSync(options.pinRoot, { recursive: true });
    return call((b) => new BpfObject(new b.NativeObject(path, options.pinRoot), path));
  }

  programs(): ProgramSpec[] {
    return this.live()
      .programs()
      .map(({ name, section, type, expectedAttachType }) => ({ name, section, type, expectedAttachType }));
  }

  maps(): MapSpec[] {
    return this.live()
      .maps()
      .map(({ name, type, keySize, valueSize, maxEntries, pinPath }) => ({ name, type, keySize, valueSize, maxEntries, pinPath }));
  }

  /** A program by name; it stays loaded after close() of the object until it is closed too. */
  program(name: string): BpfProgram {
    const spec = this.live()
      .programs()
      .find((p) => p.name === name);
    if (!spec)
      throw new Error(
        `BPF object ${this.path} has no program '${name}' (it has: ${this.programs()
          .map((p) => p.name)
          .join(', ')})`,
      );
    const fd = call((b) => b.dupFd(spec.fd));
    return new BpfProgram(fd, name, spec.expectedAttachType);
  }

  /** A map by name; it stays open after close() of the object until it is closed too. */
  map(name: string): BpfMap {
    const spec = this.live()
      .maps()
      .find((m) => m.name === name);
    if (!spec)
      throw new Error(
        `BPF object ${this.path} has no map '${name}' (it has: ${this.maps()
          .map((m) => m.name)
          .join(', ')})`,
      );
    const fd = call((b) => b.dupFd(spec.fd));
    return BpfMap.fromFd(fd, `${this.path}:${name}`);
  }

  close(): void {
    this.raw?.close();
    this.raw = undefined;
  }

  private live(): RawNativeObject {
    if (!this.raw) throw new Error(`BPF object ${this.path} is closed`);
    return this.raw;
  }
}

/** Removes a pin (a pinned program, map or link, or a directory of pins). Missing is fine. */
export function unpin(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new NativeError(`unpin ${path}: ${e.message}`, Math.abs(e.errno ?? 0), e.code ?? 'EIO', 'unpin', path);
  }
}
