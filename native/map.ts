// BpfMap: one BPF map, by fd. Keys and values are Buffers laid out as in bpf/include/maps.h
// (codecs in native/layout.ts); sizes are checked by the addon against the map.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { call, type RawNativeMap } from './binding';

export const UpdateFlags = { ANY: 0, NOEXIST: 1, EXIST: 2 } as const;
export type UpdateFlag = (typeof UpdateFlags)[keyof typeof UpdateFlags];

export interface MapInfo {
  name: string;
  id: number;
  /** libbpf's name of the map type: 'hash', 'lru_hash', 'sockhash', … */
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

export class BpfMap {
  readonly info: MapInfo;
  private readonly valueBufferSize: number;

  private constructor(private readonly raw: RawNativeMap) {
    const i = raw.info();
    this.valueBufferSize = i.valueBufferSize;
    this.info = { name: i.name, id: i.id, type: i.type, keySize: i.keySize, valueSize: i.valueSize, maxEntries: i.maxEntries, flags: i.flags };
  }

  /** Takes ownership of fd (pass a dup if the caller keeps its own). */
  static fromFd(fd: number, label = `fd ${fd}`): BpfMap {
    return call((b) => new BpfMap(new b.NativeMap(fd, label)));
  }

  /** Opens a map pinned on the bpffs. */
  static fromPin(path: string): BpfMap {
    return call((b) => {
      const fd = b.objGet(path);
      return new BpfMap(new b.NativeMap(fd, path));
    });
  }

  get name(): string {
    return this.info.name;
  }

  /** The map's fd (owned by this object; valid until close()). */
  get fd(): number {
    return this.raw.fd();
  }

  /** Size of a value buffer (value size, or per-CPU slots for per-CPU maps). */
  get valueBytes(): number {
    return this.valueBufferSize;
  }

  lookup(key: Buffer): Buffer | undefined {
    return call(() => this.raw.lookup(key));
  }

  update(key: Buffer, value: Buffer, flags: UpdateFlag = UpdateFlags.ANY): void {
    call(() => this.raw.update(key, value, flags));
  }

  /** Puts a socket (its fd) into a SOCKMAP/SOCKHASH under key. */
  updateSocket(key: Buffer, socketFd: number, flags: UpdateFlag = UpdateFlags.ANY): void {
    const value = Buffer.alloc(this.valueBufferSize);
    if (this.valueBufferSize === 8) value.writeBigUInt64LE(BigInt(socketFd));
    else value.writeUInt32LE(socketFd);
    this.update(key, value, flags);
  }

  /** Deletes key; false when it was not there. */
  delete(key: Buffer): boolean {
    return call(() => this.raw.delete(key));
  }

  /** Iterates keys. Deleting the current key while iterating is allowed. */
  *keys(): IterableIterator<Buffer> {
    let key = call(() => this.raw.nextKey(undefined));
    while (key) {
      const current: Buffer = key;
      key = call(() => this.raw.nextKey(current));
      yield current;
    }
  }

  /** Iterates [key, value] pairs (entries deleted meanwhile are skipped). */
  *entries(): IterableIterator<[Buffer, Buffer]> {
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value) yield [key, value];
    }
  }

  /** Attaches a program to this sockmap/sockhash (e.g. 'sk_msg_verdict'); the map keeps it attached. */
  attachProgram(progFd: number, attachType: string): void {
    call(() => this.raw.attachProgram(progFd, attachType));
  }

  /** Pins the map at path (on the bpffs), creating parent directories. */
  pin(path: string): void {
    mkdirSync(dirname(path), { recursive: true });
    call((b) => b.objPin(this.raw.fd(), path));
  }

  close(): void {
    this.raw.close();
  }
}
