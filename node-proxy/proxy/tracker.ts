// The bookkeeping of every proxied connection, in one place for every path (passthrough,
// outbound HBONE, same-node, inbound HBONE, plaintext inbound): the connection table entry, the
// telemetry of each reporter (metrics + access log), the policy guard that may cut it later, and
// the splice's result closing all of them at once. The hot path is untouched: nothing here runs
// per chunk (the table reads the sockets' own byte counters when asked).
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { RawSocket } from '../../common/hbone/raw-socket';
import { splice, type SpliceResult } from '../../common/hbone/splice';
import { spliceInKernel, type KernelSplice, type KernelSpliceResult } from '../../native/splice';
import type { FastPathConnection } from '../../native/sockmap';
import type { Logger } from '../../common/log';
import type { ByteCounter, ConnectionTable, Direction, Endpoint } from '../connections/table';
import type { PolicyGuard } from '../mesh/guard';
import type { PolicyConnection } from '../policy/model';
import type { ConnectionRecord, ResponseFlag } from '../telemetry/labels';
import type { NodeProxyTelemetry } from '../telemetry/metrics';
import { LiveCounter } from './counter';

export const errText = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));

/** A connection policy admitted, kept under watch so that a policy change can cut it. */
export interface Watched {
  /** The destination workload's uid (whose policy admitted it). */
  readonly destinationUid: string;
  readonly connection: PolicyConnection;
  /** What the log line names when the connection is cut. */
  readonly describe: Record<string, unknown>;
  readonly cut: () => void;
}

export interface Tracked {
  readonly direction: Direction;
  /** `namespace/name` of the enrolled workload the connection belongs to. */
  readonly workload: string;
  readonly source: Endpoint;
  readonly originalDestination: Endpoint;
  /** Byte counters of the downstream side (default: the downstream socket itself). */
  readonly counter?: ByteCounter;
  readonly details?: Readonly<Record<string, unknown>>;
  /** The reporters counted for it (none: plain passthrough, logged as an access line). */
  readonly records?: readonly ConnectionRecord[];
  readonly watch?: Watched;
  /**
   * Read when the connection ends: set when it turned out never to have been opened (an HBONE
   * tunnel whose client bytes were already on their way when the destination refused it); it is
   * then counted as failed() counts it, with no bytes delivered.
   */
  readonly outcome?: () => { readonly error: string; readonly responseFlags: ResponseFlag } | undefined;
}

export interface TrackerOptions {
  readonly table: ConnectionTable;
  readonly log: Logger;
  /** Control-plane mode: Istio metrics and access log per reporter. */
  readonly telemetry?: NodeProxyTelemetry;
  /** Control-plane mode: open connections re-checked when policy changes. */
  readonly guard?: PolicyGuard;
}

export class ConnectionTracker {
  constructor(private readonly o: TrackerOptions) {}

  /** A connection that never got its upstream (connect or tunnel failed): counted closed at once. */
  failed(records: readonly ConnectionRecord[], error: string, responseFlags?: ResponseFlag): void {
    for (const r of records) this.o.telemetry?.open(r).close({ requestBytes: 0, responseBytes: 0, error, responseFlags });
  }

  /** Policy refused a connection: counted and logged by the reporter that decided. */
  denied(record: ConnectionRecord, verdict: { policy?: string; reason: string }): void {
    this.o.telemetry?.denied(record, verdict);
  }

  /**
   * Opens the books on an established connection: table entry, telemetry per reporter, policy
   * watch. Returns what the end of its splice calls (once).
   */
  open(c: Tracked, downstream: ByteCounter): (r: SpliceResult) => void {
    const handles = (c.records ?? []).map((r) => this.o.telemetry?.open(r));
    const id = this.o.table.add({
      direction: c.direction,
      workload: c.workload,
      source: c.source,
      originalDestination: c.originalDestination,
      downstream: c.counter ?? downstream,
      details: c.details,
    });
    const forget = c.watch && this.o.guard ? this.o.guard.add(c.watch.destinationUid, c.watch.connection, c.watch.describe, c.watch.cut) : undefined;
    return (r) => {
      forget?.();
      const failed = c.outcome?.();
      const error = failed ? failed.error : r.clean ? undefined : r.error ? errText(r.error) : 'reset';
      for (const h of handles)
        h?.close(
          failed
            ? { requestBytes: 0, responseBytes: 0, error, responseFlags: failed.responseFlags }
            : { requestBytes: r.bytesToUpstream, responseBytes: r.bytesToDownstream, error },
        );
      if (handles.length > 0) {
        this.o.table.forget(id); // the reporters' telemetry logs it
        return;
      }
      const rec = this.o.table.close(id, error);
      if (rec) {
        this.o.log.info(
          {
            access: rec.direction,
            workload: rec.workload,
            src: `${rec.source.address}:${rec.source.port}`,
            dst: `${rec.originalDestination.address}:${rec.originalDestination.port}`,
            sent: rec.bytesSent,
            received: rec.bytesReceived,
            durationMs: rec.durationMs,
            ...(rec.error ? { error: rec.error } : {}),
          },
          'connection closed',
        );
      }
    };
  }

  /** Splices `down` (the captured socket, paused) and `up` and keeps the books on it. */
  splice(down: Socket, up: Duplex, c: Tracked): void {
    splice(down, up, this.open(c, down));
    down.resume();
  }

  /**
   * The same, with the bytes moved in the kernel (native/splice.ts): both sockets are handed to the
   * addon; the table reads the addon's counts; a policy re-check that denies the connection cuts
   * it there (both sides reset). With `fast` (native/sockmap.ts, armed by the caller) the apps'
   * bytes go from one app socket to the other in the kernel; the counts add what it redirected,
   * and its permits go when the splice ends or is cut. Bare fds (RawSocket) are handed over as they
   * are: a same-node connection then never becomes a net.Socket on either side.
   */
  spliceInKernel(down: Socket | RawSocket, up: Socket | RawSocket, c: Tracked, fast?: FastPathConnection): void {
    let k: KernelSplice | undefined;
    let last: KernelSpliceResult | undefined;
    const counter = new LiveCounter(
      () => (last?.aToB ?? k?.bytes()?.aToB ?? 0) + (fast?.bytes().toServer ?? 0),
      () => (last?.bToA ?? k?.bytes()?.bToA ?? 0) + (fast?.bytes().toClient ?? 0),
    );
    const cut = (): void => {
      fast?.release();
      k?.cut();
    };
    const done = this.open({ ...c, details: { ...c.details, splice: fast ? 'sockmap' : 'kernel' }, watch: c.watch && { ...c.watch, cut } }, counter);
    k = spliceInKernel(down, up, (r) => {
      last = r;
      const f = fast?.release() ?? { toServer: 0, toClient: 0 };
      const error = r.code ? Object.assign(new Error(`the spliced connection ended with ${r.code}`), { code: r.code }) : undefined;
      done({ bytesToUpstream: r.aToB + f.toServer, bytesToDownstream: r.bToA + f.toClient, clean: r.clean, error, durationMs: r.durationMs });
    });
  }
}
