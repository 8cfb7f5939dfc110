// The node proxy's table of open captured connections: who opened it (source workload), where it
// was going (original destination) and how many bytes went each way. Byte counts are read from the
// sockets' own counters when someone asks, so the splice hot path does no bookkeeping per chunk.

export type Direction = 'outbound' | 'inbound';

export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/** Anything that counts its own bytes, like net.Socket (bytesRead / bytesWritten). */
export interface ByteCounter {
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

export interface ConnectionInfo {
  readonly id: number;
  readonly direction: Direction;
  /** `namespace/name` of the enrolled workload whose listener accepted the connection. */
  readonly workload: string;
  /** The client's address as seen on the captured (downstream) socket. */
  readonly source: Endpoint;
  /** Where the client meant to go before capture rewrote it. */
  readonly originalDestination: Endpoint;
  readonly openedAt: string;
  /** Bytes the client sent towards the destination. */
  readonly bytesSent: number;
  /** Bytes delivered back to the client. */
  readonly bytesReceived: number;
  /** Mesh details: protocol (TCP/HBONE), peer identity, service, endpoint… */
  readonly details?: Readonly<Record<string, unknown>>;
}

export interface ClosedConnection extends ConnectionInfo {
  readonly durationMs: number;
  readonly error?: string;
}

interface Entry {
  readonly id: number;
  readonly direction: Direction;
  readonly workload: string;
  readonly source: Endpoint;
  readonly originalDestination: Endpoint;
  readonly openedAtMs: number;
  readonly downstream: ByteCounter;
  readonly details?: Readonly<Record<string, unknown>>;
}

export interface OpenRequest {
  direction: Direction;
  workload: string;
  source: Endpoint;
  originalDestination: Endpoint;
  downstream: ByteCounter;
  details?: Readonly<Record<string, unknown>>;
}

export class ConnectionTable {
  private readonly open = new Map<number, Entry>();
  private nextId = 1;
  private totals = { opened: 0, closed: 0, bytesSent: 0, bytesReceived: 0 };

  constructor(private readonly now: () => number = Date.now) {}

  /** Records a new connection and returns its id. */
  add(req: OpenRequest): number {
    const id = this.nextId++;
    this.open.set(id, { id, ...req, openedAtMs: this.now() });
    this.totals.opened++;
    return id;
  }

  /** Removes a connection and returns its final record (undefined if unknown or already closed). */
  close(id: number, error?: string): ClosedConnection | undefined {
    const e = this.remove(id);
    if (!e) return undefined;
    const info = this.describe(e);
    return { ...info, durationMs: this.now() - e.openedAtMs, ...(error ? { error } : {}) };
  }

  /** Removes a connection whose final record nobody reads (its telemetry has its own); counted as close() counts it. */
  forget(id: number): void {
    this.remove(id);
  }

  private remove(id: number): Entry | undefined {
    const e = this.open.get(id);
    if (!e) return undefined;
    this.open.delete(id);
    this.totals.closed++;
    this.totals.bytesSent += e.downstream.bytesRead;
    this.totals.bytesReceived += e.downstream.bytesWritten;
    return e;
  }

  get size(): number {
    return this.open.size;
  }

  /** Open connections, oldest first; optionally only those of one workload. */
  list(workload?: string): ConnectionInfo[] {
    const out: ConnectionInfo[] = [];
    for (const e of this.open.values()) if (workload === undefined || e.workload === workload) out.push(this.describe(e));
    return out;
  }

  /** Connections added over the table's lifetime (cheap: no walk of the open ones). */
  get openedTotal(): number {
    return this.totals.opened;
  }

  /** Connections removed over the table's lifetime (as cheap). */
  get closedTotal(): number {
    return this.totals.closed;
  }

  /** Counters over the table's lifetime (closed connections' bytes included). */
  stats(): { opened: number; closed: number; open: number; bytesSent: number; bytesReceived: number } {
    let sent = this.totals.bytesSent;
    let received = this.totals.bytesReceived;
    for (const e of this.open.values()) {
      sent += e.downstream.bytesRead;
      received += e.downstream.bytesWritten;
    }
    return { opened: this.totals.opened, closed: this.totals.closed, open: this.open.size, bytesSent: sent, bytesReceived: received };
  }

  private describe(e: Entry): ConnectionInfo {
    return {
      id: e.id,
      direction: e.direction,
      workload: e.workload,
      source: e.source,
      originalDestination: e.originalDestination,
      openedAt: new Date(e.openedAtMs).toISOString(),
      bytesSent: e.downstream.bytesRead,
      bytesReceived: e.downstream.bytesWritten,
      ...(e.details ? { details: e.details } : {}),
    };
  }
}
