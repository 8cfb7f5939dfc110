// Loads the compiled addon (native/build/Release/nodemesh_native.node) and turns its errors into
// NativeError. Everything else in native/ goes through `binding` and `call`.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../common/paths';

/** An error from the kernel or libbpf: what failed, on what, why (errno) and what to do. */
export class NativeError extends Error {
  override readonly name = 'NativeError';
  constructor(
    message: string,
    /** positive errno, e.g. 1 for EPERM */
    readonly errno: number,
    /** symbolic errno, e.g. 'EPERM' */
    readonly code: string,
    /** the operation that failed, e.g. 'load BPF object' */
    readonly op: string,
    /** the object it was applied to: a path, a map name, an address */
    readonly object: string,
  ) {
    super(message);
  }
}

/** The engine's one callback: every connection and stream event, its fields by kind (native/hbone.ts). */
export type HboneDispatch = (
  kind: number,
  id: number,
  token: number,
  status: number,
  a: number,
  b: number,
  clean: boolean,
  s1: string,
  s2: string,
  list: (Buffer | string)[],
) => void;

export interface RawProgramSpec {
  name: string;
  section: string;
  type: string;
  expectedAttachType: string;
  fd: number;
}
export interface RawMapSpec {
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  fd: number;
  pinPath: string | null;
}
export interface RawMapInfo {
  name: string;
  id: number;
  type: string;
  keySize: number;
  valueSize: number;
  valueBufferSize: number;
  maxEntries: number;
  flags: number;
}
export interface RawNativeObject {
  programs(): RawProgramSpec[];
  maps(): RawMapSpec[];
  close(): void;
}
export interface RawNativeMap {
  info(): RawMapInfo;
  lookup(key: Buffer): Buffer | undefined;
  update(key: Buffer, value: Buffer, flags: number): void;
  delete(key: Buffer): boolean;
  nextKey(key: Buffer | undefined): Buffer | undefined;
  fd(): number;
  attachProgram(progFd: number, attachType: string): void;
  close(): void;
}
export interface RawSockOpts {
  transparent?: boolean;
  freebind?: boolean;
  reuseAddress?: boolean;
  reusePort?: boolean;
  /** TCP_NODELAY */
  noDelay?: boolean;
  mark?: number;
}
export interface RawNetnsWorkerConfig {
  idleMs: number;
  poolSize: number;
  maxQueue: number;
}
export interface RawNetnsWorker {
  path: string;
  inode: number;
  pooled: number;
  queued: number;
  sockets: number;
}
/** The C heap over every arena (glibc mallinfo2), bytes. */
export interface MallocStats {
  /** what the arenas hold from the system (not counting blocks mmapped on their own) */
  arenaBytes: number;
  inUseBytes: number;
  /** free but kept by the arenas (resident or not) */
  freeBytes: number;
  /** blocks mmapped on their own (at or above the mmap threshold) */
  mmappedBytes: number;
}

export interface RawBinding {
  NativeObject: new (path: string, pinRoot: string | undefined) => RawNativeObject;
  NativeMap: new (fd: number, label: string) => RawNativeMap;
  /** native/src/netns_accept.cc (native/netns-accept.ts) */
  CaptureAcceptor: new (
    listenFd: number,
    mapFd: number,
    netnsCookie: bigint,
    onConnection: (fd: number, clientAddress: string, clientPort: number, dstAddress: string | undefined, dstPort: number) => void,
    onError: (err: Error) => void,
  ) => { close(): void; fd(): number };
  resetFd(fd: number): void;
  objGet(path: string): number;
  objPin(fd: number, path: string): void;
  closeFd(fd: number): void;
  dupFd(fd: number): number;
  /** native/src/fd.cc: V8's LowMemoryNotification, then glibc malloc_trim(0) (true when that gave memory back) */
  reduceMemory(): boolean;
  /** native/src/fd.cc: glibc's mmap and trim thresholds fixed at `bytes` (mallopt); false when refused */
  holdMallocThresholds(bytes: number): boolean;
  /** native/src/fd.cc: the C heap over every arena (glibc mallinfo2); undefined without glibc ≥ 2.33 */
  mallocStats(): MallocStats | undefined;
  progInfo(fd: number): { name: string; id: number; type: string; tag: string };
  linkInfo(fd: number): { id: number; progId: number; type: number; attachType?: string; cgroupId?: bigint; netnsIno?: number };
  linkCreate(progFd: number, target: string, attachType: string, label: string): number;
  linkDetach(fd: number): void;
  socketCookie(fd: number): bigint;
  socketNetnsCookie(fd: number): bigint;
  setMark(fd: number, mark: number): void;
  setSendBuffer(fd: number, bytes: number): number;
  listenInNetns(netns: string, host: string, port: number, backlog: number, opts: RawSockOpts): number;
  connectInNetns(
    netns: string,
    host: string,
    port: number,
    localHost: string | undefined,
    localPort: number | undefined,
    timeoutMs: number,
    opts: RawSockOpts,
  ): Promise<number>;
  netnsCookie(netns: string): bigint;
  bindProbeInNetns(netns: string, host: string, port: number): bigint;
  bindProbeInNetnsFd(nsfd: number, host: string, port: number): bigint;
  socketNetnsFd(fd: number): number;
  releaseNetns(netns: string): number;
  closeNetnsWorkers(): number;
  configureNetnsWorkers(c?: { idleMs?: number; poolSize?: number; maxQueue?: number }): RawNetnsWorkerConfig;
  netnsWorkers(): RawNetnsWorker[];
  probeProgramType(name: string): boolean;
  probeMapType(name: string): boolean;
  probeHelper(progType: string, helperId: number): boolean;
  libbpfVersion(): string;
  spliceInit(dispatch: (id: number, aToB: number, bToA: number, clean: boolean, code: string) => void, sliceUs?: number): void;
  spliceStart(fdA: number, fdB: number, prefixA?: Buffer, prefixB?: Buffer): number;
  spliceCut(id: number): boolean;
  spliceBytes(id: number): [number, number] | undefined;
  spliceActive(): number;
  splicePooledPipes(): number;
  hboneInit(dispatch: HboneDispatch, threads: number, sliceUs?: number): void;
  hboneContext(certChain: string, key: string, roots: string, server: boolean): number;
  hboneContextFree(id: number): void;
  hboneConnection(fd: number, context: number, server: boolean, options: object): number;
  hboneOpen(conn: number, fd: number, authority: string, headers: string[], prefix?: Buffer): number;
  hboneAnswer(token: number, status: number, fd?: number, prefix?: Buffer): boolean;
  hboneReset(token: number): boolean;
  hboneClose(conn: number, graceMs: number): boolean;
  hboneDestroy(conn: number, reason: string): boolean;
  hboneBytes(token: number): [number, number] | undefined;
  hboneActive(): [number, number];
  hboneResetFd(fd: number): void;
  hboneThreadCount(): number;
}

/** The addon; NODEMESH_NATIVE_ADDON names another build of it (bench/hbone-native.ts compares two builds in one run). */
export const addonPath: string = process.env.NODEMESH_NATIVE_ADDON || join(projectRoot, 'native', 'build', 'Release', 'nodemesh_native.node');

let loaded: RawBinding | undefined;

/** The addon, loaded on first use (so importing native/ never fails by itself). */
export function binding(): RawBinding {
  if (loaded) return loaded;
  if (!existsSync(addonPath)) {
    throw new Error(`the native addon is not built (${addonPath} is missing): run \`bash scripts/setup.sh\` in ${projectRoot}`);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  loaded = require(addonPath) as RawBinding;
  return loaded;
}

/** Converts an error thrown by the addon into a NativeError (others pass through). */
export function toNativeError(err: unknown): unknown {
  if (err instanceof Error && typeof (err as { errno?: unknown }).errno === 'number' && !(err instanceof NativeError)) {
    const e = err as Error & { errno: number; code: string; op?: string; object?: string };
    return new NativeError(e.message, e.errno, e.code, e.op ?? '', e.object ?? '');
  }
  return err;
}

/** Runs fn, rethrowing addon errors as NativeError. */
export function call<T>(fn: (b: RawBinding) => T): T {
  const b = binding();
  try {
    return fn(b);
  } catch (err) {
    throw toNativeError(err);
  }
}
