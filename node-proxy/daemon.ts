// The node proxy daemon: checks the kernel, loads the capture dataplane, enrols the workloads its
// source names (and keeps following it), serves admin and readiness, and on SIGTERM closes its
// listeners while capture stays pinned (connects then fail until it is back).
import type { Logger } from '../common/log';
import { startAdmin, type AdminServers } from './admin/server';
import { BpfDataplane } from './capture/bpf-dataplane';
import { Enroller, type EnrolmentHooks, type WorkloadStatus } from './capture/enroller';
import type { NodeLayout } from './capture/pins';
import type { WorkloadSource } from './capture/workload';
import { ConnectionTable } from './connections/table';
import { ensureBpffs } from './doctor/mounts';
import { probeKernel } from './doctor/probe';
import { missingMessage } from './doctor/report';
import type { CaptureHandlers } from './proxy/handlers';
import { nativeSockets } from './proxy/native-sockets';
import { captureHandlers } from './proxy/proxy';
import { ConnectionTracker } from './proxy/tracker';
import { plaintextInboundLimits } from './proxy/inbound-limits';

/** What the control-plane mode adds to the capture daemon: connection handling, hooks, admin views. */
export interface NodeProxyMesh {
  /** Connection handlers for the captured listeners (built with the mesh, before the proxy). */
  readonly handlers: CaptureHandlers;
  readonly hooks?: EnrolmentHooks;
  /** Why the mesh side is not ready yet (xDS not synced, certificates missing), or undefined. */
  notReadyReason(): string | undefined;
  /** More admin endpoints: path -> JSON view. */
  readonly adminViews?: Readonly<Record<string, () => unknown>>;
  stats?(): unknown;
  start?(): Promise<void>;
  stop?(): Promise<void>;
}

export interface NodeProxyOptions {
  node: string;
  layout: NodeLayout;
  source: WorkloadSource;
  log: Logger;
  adminPort?: number;
  readyPort?: number;
  mesh?: NodeProxyMesh;
  /** The capture dataplane, when the caller built it first (the mesh needs its original destinations); else loaded at start. */
  dataplane?: BpfDataplane;
  /** The table of open connections the handlers fill (default: a new one). */
  table?: ConnectionTable;
}

export class KernelNotReadyError extends Error {
  override name = 'KernelNotReadyError';
}

export class NodeProxy {
  readonly table: ConnectionTable;
  private dataplane?: BpfDataplane;
  private enroller?: Enroller;
  private admin?: AdminServers;
  private unwatch?: () => void;
  private firstReconcileDone = false;
  private lastError?: string;
  private running: Promise<void> = Promise.resolve();
  private pending = false;

  constructor(private readonly opts: NodeProxyOptions) {
    this.table = opts.table ?? new ConnectionTable();
    this.dataplane = opts.dataplane;
  }

  /** Mounts the bpffs if needed and refuses with one message naming every missing kernel feature. */
  static checkKernel(log: Logger): void {
    if (ensureBpffs() === 'mounted') log.info('mounted the bpffs at /sys/fs/bpf');
    const report = probeKernel();
    if (!report.ok) throw new KernelNotReadyError(missingMessage(report));
  }

  private open(): Enroller {
    if (this.enroller) return this.enroller;
    const dataplane = (this.dataplane ??= new BpfDataplane(this.opts.layout, this.opts.log));
    const log = this.opts.log;
    const handlers =
      this.opts.mesh?.handlers ??
      captureHandlers({
        sockets: nativeSockets,
        originals: dataplane.originals,
        tracker: new ConnectionTracker({ table: this.table, log }),
        log,
        inboundLimits: plaintextInboundLimits(),
      });
    this.enroller = new Enroller(this.opts.layout, dataplane, nativeSockets, handlers, this.opts.log, this.opts.mesh?.hooks);
    return this.enroller;
  }

  async start(): Promise<void> {
    const enroller = this.open();
    const mesh = this.opts.mesh;
    await mesh?.start?.();
    this.admin = await startAdmin(
      {
        workloads: () => enroller.status().map((w) => ({ ...w, openConnections: this.table.list(w.key).length })),
        connections: (w) => this.table.list(w),
        stats: () => ({
          node: this.opts.node,
          source: this.opts.source.description,
          connections: this.table.stats(),
          ...(mesh?.stats ? { mesh: mesh.stats() } : {}),
          // what the resident memory is made of (bench/mesh.ts reports it): V8 heap, buffers
          // outside it, and the rest (code, native allocations, thread stacks)
          memory: process.memoryUsage(),
        }),
        notReadyReason: () => this.notReadyReason(),
        extra: mesh?.adminViews,
      },
      { adminPort: this.opts.adminPort, readyPort: this.opts.readyPort },
    );
    this.unwatch = this.opts.source.watch(() => this.reconcileSoon());
    await this.reconcileSoon();
  }

  private notReadyReason(): string | undefined {
    if (!this.firstReconcileDone) return 'enrolment has not finished yet';
    if (this.lastError) return this.lastError;
    const missing = this.enroller?.notListening() ?? [];
    if (missing.length) return `no listeners for ${missing.join(', ')}`;
    return this.opts.mesh?.notReadyReason();
  }

  /** Runs one reconcile after the current one; calls while one is queued coalesce. */
  reconcileSoon(): Promise<void> {
    if (this.pending) return this.running;
    this.pending = true;
    this.running = this.running.then(async () => {
      this.pending = false;
      try {
        const desired = await this.opts.source.list();
        const res = await this.open().reconcile(desired);
        const failed = res.actions.filter((a) => !a.ok && a.kind !== 'skip');
        this.lastError = failed.length ? `enrolment failed for ${failed.map((f) => `${f.key} (${f.error})`).join(', ')}` : undefined;
      } catch (err) {
        this.lastError = `cannot read workloads from ${this.opts.source.description}: ${(err as Error).message}`;
        this.opts.log.error({ err: (err as Error).message }, 'reconcile failed');
      }
      this.firstReconcileDone = true;
    });
    return this.running;
  }

  /** One workload's enrolment as it stands now (undefined when it is not enrolled). */
  enrolment(key: string): WorkloadStatus | undefined {
    return this.enroller?.status().find((w) => w.key === key);
  }

  /** Stops serving; capture stays pinned. */
  async stop(): Promise<void> {
    this.unwatch?.();
    await this.running;
    await this.admin?.close();
    await this.enroller?.stop();
    await this.opts.mesh?.stop?.();
    this.dataplane?.close();
  }

  /** Unenrols every workload and removes every pin of this node. */
  async teardown(): Promise<void> {
    const enroller = this.open();
    await enroller.teardown();
    await enroller.stop();
    this.dataplane?.close();
  }

  get adminPorts(): { admin?: number; ready?: number } {
    return { admin: this.admin?.adminPort, ready: this.admin?.readyPort };
  }
}
