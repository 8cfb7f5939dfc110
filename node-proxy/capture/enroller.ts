// Carries out enrolment plans: for each workload, listeners inside its netns (15001 on loopback v4
// and v6, 15006 on all addresses), its map entries, its programs attached and pinned, and a record
// so that a restart adopts instead of attaching twice. Unenrol undoes exactly that, in the reverse
// order: detach first (new connections take the direct path at once), then entries, then listeners.
// Connections already spliced keep running until they close.
import { statSync } from 'node:fs';
import type { AddressInfo, Server } from 'node:net';
import type { Logger } from '../../common/log';
import type { CaptureHandlers, CapturedWorkload } from '../proxy/handlers';
import type { NetnsSockets } from '../proxy/netns-sockets';
import type { Dataplane } from './dataplane';
import { captureEntries } from './entries';
import { planEnrolment, type EnrolmentAction, type EnrolmentRecord, type Observed } from './plan';
import { readRecords, writeRecords } from './records';
import type { NodeLayout } from './pins';
import { workloadKey, type CaptureWorkload } from './workload';
import { INBOUND_CAPTURE_PORT, OUTBOUND_CAPTURE_PORT } from '../../common/contracts/ports';

/**
 * What else happens when a workload's listeners open or close (the mesh opens the workload's HBONE
 * listener and fetches its certificate). Errors are logged, never undo the enrolment.
 */
export interface EnrolmentHooks {
  listening(key: string, workload: CaptureWorkload, captured: CapturedWorkload): void | Promise<void>;
  closing(key: string): void | Promise<void>;
}

/** A workload's listener: 15001 accepted in the addon (native/netns-accept.ts), 15006 a net.Server. */
interface Listening {
  close(done?: () => void): unknown;
  address(): AddressInfo | string | null;
}

interface Live {
  record: EnrolmentRecord;
  cookie: bigint;
  listeners: Listening[];
}

export interface WorkloadStatus {
  key: string;
  name: string;
  namespace: string;
  netnsPath: string;
  cgroupPath: string;
  addresses: readonly string[];
  netnsCookie: string;
  excludedOutboundPorts: readonly number[];
  excludedInboundPorts: readonly number[];
  excludedCidrs: readonly string[];
  listeners: string[];
  enrolledAt: string;
}

export interface ReconcileResult {
  actions: Array<{ kind: EnrolmentAction['kind']; key: string; ok: boolean; error?: string; reason?: string }>;
}

function observe(w: CaptureWorkload): Observed {
  const ino = (p: string): number | undefined => {
    try {
      return statSync(p).ino;
    } catch {
      return undefined;
    }
  };
  return { netnsInode: ino(w.netnsPath), cgroupId: ino(w.cgroupPath) };
}

const closeServer = (s: Listening): Promise<void> => new Promise((r) => s.close(() => r()));

export class Enroller {
  private readonly live = new Map<string, Live>();
  private records: EnrolmentRecord[];

  constructor(
    private readonly layout: NodeLayout,
    private readonly dataplane: Dataplane,
    private readonly sockets: NetnsSockets,
    private readonly handlers: CaptureHandlers,
    private readonly log: Logger,
    private readonly hooks?: EnrolmentHooks,
  ) {
    this.records = readRecords(layout.recordsFile);
  }

  /** Brings the node to `desired`; never throws for one workload's failure (it is reported). */
  async reconcile(desired: readonly CaptureWorkload[]): Promise<ReconcileResult> {
    const actions = planEnrolment(desired, this.records, observe);
    const out: ReconcileResult['actions'] = [];
    for (const a of actions) {
      const key = a.kind === 'unenrol' ? a.record.key : workloadKey(a.workload);
      try {
        await this.apply(a);
        out.push({ kind: a.kind, key, ok: a.kind !== 'skip', ...('reason' in a ? { reason: a.reason } : {}) });
      } catch (err) {
        this.log.error({ workload: key, action: a.kind, err: (err as Error).message }, 'enrolment step failed');
        out.push({ kind: a.kind, key, ok: false, error: (err as Error).message });
      }
    }
    this.removeOrphanPins();
    writeRecords(this.layout.recordsFile, this.records);
    return { actions: out };
  }

  /** Unenrols everything and removes the node's pins: nothing of nodemesh stays in the kernel. */
  async teardown(): Promise<void> {
    await this.reconcile([]);
    for (const key of this.dataplane.pinnedWorkloads()) this.dataplane.detach(key);
    this.dataplane.removeNodePins();
  }

  /** Closes the listeners but leaves capture pinned (a restart adopts it). */
  async stop(): Promise<void> {
    await Promise.all([...this.live.keys()].map((key) => this.hookClosing(key)));
    await Promise.all([...this.live.values()].flatMap((l) => l.listeners.map(closeServer)));
    this.live.clear();
  }

  status(): WorkloadStatus[] {
    return this.records.map((r) => {
      const l = this.live.get(r.key);
      return {
        key: r.key,
        name: r.workload.name,
        namespace: r.workload.namespace,
        netnsPath: r.workload.netnsPath,
        cgroupPath: r.workload.cgroupPath,
        addresses: r.workload.addresses,
        netnsCookie: r.netnsCookie,
        excludedOutboundPorts: r.workload.excludedOutboundPorts,
        excludedInboundPorts: r.workload.excludedInboundPorts,
        excludedCidrs: r.workload.excludedCidrs,
        listeners: (l?.listeners ?? []).map((s) => {
          const a = s.address();
          return a && typeof a === 'object' ? `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` : String(a);
        }),
        enrolledAt: r.enrolledAt,
      };
    });
  }

  /** Workloads that are enrolled but whose listeners are not open in this process. */
  notListening(): string[] {
    return this.records.filter((r) => !this.live.has(r.key)).map((r) => r.key);
  }

  private async apply(a: EnrolmentAction): Promise<void> {
    switch (a.kind) {
      case 'enrol':
        return this.enrol(a.workload);
      case 'adopt':
        return this.adopt(a.workload, a.record);
      case 'update': {
        const cookie = BigInt(a.record.netnsCookie);
        this.dataplane.writeEntries(cookie, captureEntries(a.workload), captureEntries(a.record.workload));
        this.setRecord({ ...a.record, workload: a.workload });
        if (!this.live.has(a.record.key)) await this.adopt(a.workload, { ...a.record, workload: a.workload });
        this.log.info({ workload: a.record.key }, 'capture settings updated');
        return;
      }
      case 'unenrol':
        return this.unenrol(a.record, a.reason);
      case 'skip':
        this.log.warn({ workload: workloadKey(a.workload), reason: a.reason }, 'not enrolling workload for now');
        return;
    }
  }

  private async openListeners(key: string, w: CaptureWorkload, cookie: bigint): Promise<{ listeners: Listening[]; inbound: Server }> {
    const wl: CapturedWorkload = { key, netnsPath: w.netnsPath, netnsCookie: cookie };
    const h = this.handlers;
    const listeners: Listening[] = [];
    // 15001's connections are accepted by the addon, which takes each one's original destination
    // from the capture map in the same step (docs/node-proxy.md, "Connection set-up")
    const outbound = (host: string): Listening =>
      this.sockets.listenCaptured(
        w.netnsPath,
        host,
        OUTBOUND_CAPTURE_PORT,
        { netnsCookie: cookie, originalsMapFd: this.dataplane.originals.mapFd },
        (c) => h.outbound(wl, c),
        (err) => this.log.warn({ workload: key, err: err.message }, 'accepting a captured connection failed'),
      );
    try {
      listeners.push(outbound('127.0.0.1'));
      try {
        listeners.push(outbound('::1'));
      } catch (err) {
        // A netns without IPv6 has no ::1; IPv6 connects there cannot leave the pod anyway.
        this.log.debug({ workload: key, err: (err as Error).message }, 'no IPv6 outbound listener');
      }
      let inbound: Server;
      try {
        inbound = await this.sockets.listen(w.netnsPath, '::', INBOUND_CAPTURE_PORT, (s) => h.inbound(wl, s));
      } catch {
        inbound = await this.sockets.listen(w.netnsPath, '0.0.0.0', INBOUND_CAPTURE_PORT, (s) => h.inbound(wl, s));
      }
      listeners.push(inbound);
      return { listeners, inbound };
    } catch (err) {
      await Promise.all(listeners.map(closeServer));
      throw err;
    }
  }

  private async enrol(w: CaptureWorkload): Promise<void> {
    const key = workloadKey(w);
    const entries = captureEntries(w); // validates settings before touching the kernel
    const cookie = this.dataplane.netnsCookie(w.netnsPath);
    const obs = observe(w);
    const { listeners, inbound } = await this.openListeners(key, w, cookie);
    try {
      this.dataplane.writeEntries(cookie, entries);
      this.dataplane.registerInbound(entries.addresses, this.sockets.serverFd(inbound));
      this.dataplane.attach(key, w);
    } catch (err) {
      try {
        this.dataplane.detach(key);
        this.dataplane.deleteEntries(cookie, entries);
      } catch (cleanupErr) {
        this.log.warn({ workload: key, err: (cleanupErr as Error).message }, 'cleanup after a failed enrolment was incomplete');
      }
      await Promise.all(listeners.map(closeServer));
      throw err;
    }
    const record: EnrolmentRecord = {
      key,
      workload: w,
      netnsCookie: cookie.toString(),
      netnsInode: obs.netnsInode ?? 0,
      cgroupId: obs.cgroupId ?? 0,
      enrolledAt: new Date().toISOString(),
    };
    this.live.set(key, { record, cookie, listeners });
    this.setRecord(record);
    this.log.info({ workload: key, netnsCookie: record.netnsCookie }, 'workload enrolled');
    await this.hookListening(key, w, cookie);
  }

  private async adopt(w: CaptureWorkload, record: EnrolmentRecord): Promise<void> {
    const key = record.key;
    const cookie = BigInt(record.netnsCookie);
    let live = this.live.get(key);
    if (!live) {
      const { listeners, inbound } = await this.openListeners(key, w, cookie);
      live = { record, cookie, listeners };
      this.live.set(key, live);
      const entries = captureEntries(w);
      this.dataplane.writeEntries(cookie, entries); // idempotent: the pinned maps normally hold them already
      this.dataplane.registerInbound(entries.addresses, this.sockets.serverFd(inbound));
      const added = this.dataplane.attach(key, w);
      this.log.info({ workload: key, reattached: added }, 'adopted pinned enrolment; listeners re-opened');
      await this.hookListening(key, w, cookie);
    }
  }

  private async unenrol(record: EnrolmentRecord, reason: string): Promise<void> {
    this.dataplane.detach(record.key);
    this.dataplane.deleteEntries(BigInt(record.netnsCookie), captureEntries(record.workload));
    const live = this.live.get(record.key);
    if (live) await this.hookClosing(record.key);
    this.live.delete(record.key);
    // Stop accepting; the connections already accepted keep running until they close and are not
    // waited for (an app's long-lived connection would hold up this unenrol, a pod's CNI DEL, and
    // every reconcile queued behind it).
    if (live) for (const l of live.listeners) l.close();
    this.records = this.records.filter((r) => r.key !== record.key);
    // Our worker thread in the pod's netns (and its ready sockets) would keep a deleted pod's netns
    // alive until its idle timeout; no other enrolled workload lives in that netns, so stop it now.
    if (!this.records.some((r) => r.workload.netnsPath === record.workload.netnsPath)) {
      try {
        this.sockets.release(record.workload.netnsPath);
      } catch (err) {
        this.log.warn({ workload: record.key, err: (err as Error).message }, 'could not release the netns worker (it leaves by itself when idle)');
      }
    }
    this.log.info({ workload: record.key, reason }, 'workload unenrolled');
  }

  private async hookListening(key: string, w: CaptureWorkload, cookie: bigint): Promise<void> {
    try {
      await this.hooks?.listening(key, w, { key, netnsPath: w.netnsPath, netnsCookie: cookie });
    } catch (err) {
      this.log.error({ workload: key, err: (err as Error).message }, 'after-enrolment step failed');
    }
  }

  private async hookClosing(key: string): Promise<void> {
    try {
      await this.hooks?.closing(key);
    } catch (err) {
      this.log.warn({ workload: key, err: (err as Error).message }, 'before-unenrolment step failed');
    }
  }

  private setRecord(r: EnrolmentRecord): void {
    this.records = [...this.records.filter((x) => x.key !== r.key), r];
  }

  /** Link pins without a record (a crash between attach and record): detach them. */
  private removeOrphanPins(): void {
    const known = new Set(this.records.map((r) => r.key));
    for (const key of this.dataplane.pinnedWorkloads()) {
      if (!known.has(key)) {
        this.log.warn({ workload: key }, 'removing link pins without an enrolment record');
        this.dataplane.detach(key);
      }
    }
  }
}
