// The node proxy's Prometheus metrics: Istio's standard TCP metrics (both reporters) and the
// mesh's own health — xDS connection, policy denials, BPF map fill, workload state size.
// Byte counters follow Istio: istio_tcp_received_bytes_total counts what the client sent
// (request direction), istio_tcp_sent_bytes_total what went back to it (response direction).
// Counting happens at open, at close, and when the proxy reports progress of a long connection —
// never per chunk.
import { Counter, Gauge, Registry } from '../../common/prom';
import type { XdsClientStatus } from '../../common/xds/client';
import { createLogger, type Logger } from '../../common/log';
import { RecentRecords } from '../../common/recent-records';
import { logConnection, recentRecordFields, type ConnectionOutcome } from './access-log';
import { TCP_LABEL_NAMES, tcpLabels, type ConnectionRecord, type ResponseFlag, type TcpLabelName, type TcpLabels } from './labels';

export interface BpfMapFill {
  readonly map: string;
  readonly entries: number;
  readonly capacity: number;
}

export interface TelemetryOptions {
  /** Defaults to a new registry (the node proxy serves it on 15020). */
  readonly registry?: Registry;
  /** Access log; defaults to a pino logger named "access". */
  readonly accessLog?: Logger;
  /** Read at scrape time: fill of the pinned BPF maps. */
  readonly bpfMapFill?: () => readonly BpfMapFill[];
  /** The recent connections served on 15020 at /recent (default: a ring of 512). */
  readonly recent?: RecentRecords;
}

/** A connection being counted; report bytes as totals so far, then close once. */
export interface ConnectionHandle {
  /** Count the bytes moved since the last report (totals so far, each direction). */
  progress(requestBytes: number, responseBytes: number): void;
  /** Count the final totals and the close, and write the access-log line. Later calls do nothing. */
  close(outcome: { requestBytes: number; responseBytes: number; error?: string; responseFlags?: ResponseFlag }): void;
}

/**
 * One label set of the istio_tcp_* counters and its counts. prom-client hashes and validates the
 * whole label object on every inc(), four times per connection with 23 labels each, which showed
 * in a new connection's profile; the counts are kept here per label set instead and handed to
 * prom-client when it is scraped (the counters' collect()).
 */
class TcpSeries {
  opened = 0;
  receivedBytes = 0;
  sentBytes = 0;
  /** Closed connections by response_flags. */
  readonly closed = new Map<ResponseFlag, number>();
  private readonly flagged = new Map<ResponseFlag, TcpLabels>();

  constructor(readonly labels: TcpLabels) {}

  close(flags: ResponseFlag): void {
    this.closed.set(flags, (this.closed.get(flags) ?? 0) + 1);
  }

  /** The label set with `flags` as response_flags (what closed connections are counted under). */
  labelsWith(flags: ResponseFlag): TcpLabels {
    if (flags === this.labels.response_flags) return this.labels;
    let l = this.flagged.get(flags);
    if (!l) this.flagged.set(flags, (l = { ...this.labels, response_flags: flags }));
    return l;
  }
}

/** Sets a counter to the totals in `series` (at scrape time): only the label sets that counted something. */
function report(counter: Counter<TcpLabelName>, series: Iterable<TcpSeries>, read: (s: TcpSeries, emit: (labels: TcpLabels, n: number) => void) => void): void {
  counter.reset();
  const emit = (labels: TcpLabels, n: number): void => {
    if (n > 0) counter.inc(labels, n);
  };
  for (const s of series) read(s, emit);
}

export class NodeProxyTelemetry {
  readonly registry: Registry;
  /** The most recent connections (allowed, failed and denied), served on 15020 at /recent. */
  readonly recent: RecentRecords;
  private readonly accessLog: Logger;
  private readonly denials: Counter<'reporter' | 'policy'>;
  private readonly xdsConnected: Gauge;
  private readonly xdsSynced: Gauge;
  private readonly xdsNacks: Gauge;
  private readonly stateObjects: Gauge<'kind'>;
  /** The istio_tcp_* label sets seen so far, by their values (as many as prom-client kept before). */
  private readonly series = new Map<string, TcpSeries>();

  constructor(options: TelemetryOptions = {}) {
    this.registry = options.registry ?? new Registry();
    this.accessLog = options.accessLog ?? createLogger('access');
    this.recent = options.recent ?? new RecentRecords('node-proxy');
    const registers = [this.registry];
    const labelNames = [...TCP_LABEL_NAMES];
    const series = this.series.values.bind(this.series);
    new Counter({
      name: 'istio_tcp_connections_opened_total',
      help: 'TCP connections opened',
      labelNames,
      registers,
      collect() {
        report(this, series(), (s, emit) => emit(s.labels, s.opened));
      },
    });
    new Counter({
      name: 'istio_tcp_connections_closed_total',
      help: 'TCP connections closed',
      labelNames,
      registers,
      collect() {
        report(this, series(), (s, emit) => {
          for (const [flags, n] of s.closed) emit(s.labelsWith(flags), n);
        });
      },
    });
    new Counter({
      name: 'istio_tcp_sent_bytes_total',
      help: 'Bytes sent back to the client (response direction) on TCP connections',
      labelNames,
      registers,
      collect() {
        report(this, series(), (s, emit) => emit(s.labels, s.sentBytes));
      },
    });
    new Counter({
      name: 'istio_tcp_received_bytes_total',
      help: 'Bytes received from the client (request direction) on TCP connections',
      labelNames,
      registers,
      collect() {
        report(this, series(), (s, emit) => emit(s.labels, s.receivedBytes));
      },
    });
    this.denials = new Counter({
      name: 'nodemesh_policy_denials_total',
      help: 'Connections refused by L4 policy (AuthorizationPolicy or PeerAuthentication STRICT), by the policy that decided',
      labelNames: ['reporter', 'policy'],
      registers,
    });
    this.xdsConnected = new Gauge({ name: 'nodemesh_xds_connected', help: '1 while the xDS stream to the control plane is up', registers });
    this.xdsSynced = new Gauge({ name: 'nodemesh_xds_synced', help: '1 once every workload API type has been received', registers });
    this.xdsNacks = new Gauge({ name: 'nodemesh_xds_client_nacks', help: 'xDS responses this proxy rejected (NACK) since it started', registers });
    this.stateObjects = new Gauge({
      name: 'nodemesh_state_objects',
      help: 'What the node proxy knows about the mesh: workloads, services, authorizations, local enrolled workloads',
      labelNames: ['kind'],
      registers,
    });
    const fill = options.bpfMapFill;
    if (fill) {
      new Gauge({
        name: 'nodemesh_bpf_map_entries',
        help: 'Entries in a pinned BPF map',
        labelNames: ['map'],
        registers,
        collect() {
          for (const m of fill()) this.set({ map: m.map }, m.entries);
        },
      });
      new Gauge({
        name: 'nodemesh_bpf_map_fill_ratio',
        help: 'Entries in a pinned BPF map divided by its max_entries (1 = full: new enrolments or connections fail)',
        labelNames: ['map'],
        registers,
        collect() {
          for (const m of fill()) this.set({ map: m.map }, m.capacity > 0 ? m.entries / m.capacity : 0);
        },
      });
    }
  }

  /** A connection was accepted (and allowed): count it open; returns the handle to close it. */
  open(record: ConnectionRecord): ConnectionHandle {
    const series = this.seriesOf(record);
    const openedAt = process.hrtime.bigint();
    series.opened++;
    let reportedRequest = 0;
    let reportedResponse = 0;
    let closed = false;
    const count = (requestBytes: number, responseBytes: number): void => {
      if (requestBytes > reportedRequest) series.receivedBytes += requestBytes - reportedRequest;
      if (responseBytes > reportedResponse) series.sentBytes += responseBytes - reportedResponse;
      reportedRequest = Math.max(reportedRequest, requestBytes);
      reportedResponse = Math.max(reportedResponse, responseBytes);
    };
    return {
      progress: (requestBytes, responseBytes) => {
        if (!closed) count(requestBytes, responseBytes);
      },
      close: (outcome) => {
        if (closed) return;
        closed = true;
        count(outcome.requestBytes, outcome.responseBytes);
        const flags = outcome.responseFlags ?? (outcome.error !== undefined ? 'CONNECT' : '-');
        // The close carries the flags the connection ended with.
        series.close(flags);
        const full: ConnectionOutcome = {
          requestBytes: outcome.requestBytes,
          responseBytes: outcome.responseBytes,
          durationMs: Number(process.hrtime.bigint() - openedAt) / 1e6,
          responseFlags: flags,
          error: outcome.error,
        };
        logConnection(this.accessLog, record, full);
        this.recent.push(() => recentRecordFields(record, full));
      },
    };
  }

  /**
   * Policy refused a connection: as ztunnel counts it, opened (response_flags "-") and closed with
   * response_flags DENY, no bytes; also in nodemesh_policy_denials_total and in the access log
   * with the reason.
   */
  denied(record: ConnectionRecord, verdict: { policy?: string; reason: string }): void {
    const series = this.seriesOf(record);
    series.opened++;
    series.close('DENY');
    this.denials.inc({ reporter: record.reporter, policy: verdict.policy ?? 'none' });
    const outcome: ConnectionOutcome = {
      requestBytes: 0,
      responseBytes: 0,
      durationMs: 0,
      responseFlags: 'DENY',
      denyReason: verdict.reason,
      policy: verdict.policy,
    };
    logConnection(this.accessLog, record, outcome);
    this.recent.push(recentRecordFields(record, outcome));
  }

  /** The series of a connection's labels (response_flags "-"), made at its first connection. */
  private seriesOf(record: ConnectionRecord): TcpSeries {
    const labels = tcpLabels(record);
    let key = '';
    for (const name of TCP_LABEL_NAMES) key += `${labels[name]}\u0000`;
    let s = this.series.get(key);
    if (!s) this.series.set(key, (s = new TcpSeries(labels)));
    return s;
  }

  /** Mirror an xDS client's status (call from its onStatus listener). */
  xdsStatus(status: Pick<XdsClientStatus, 'connected' | 'synced' | 'nacks'>): void {
    this.xdsConnected.set(status.connected ? 1 : 0);
    this.xdsSynced.set(status.synced ? 1 : 0);
    this.xdsNacks.set(status.nacks);
  }

  /** Mirror the workload state's size (call on its changes). */
  stateStats(stats: { workloads: number; services: number; authorizations: number; localEnrolled: number }): void {
    this.stateObjects.set({ kind: 'workloads' }, stats.workloads);
    this.stateObjects.set({ kind: 'services' }, stats.services);
    this.stateObjects.set({ kind: 'authorizations' }, stats.authorizations);
    this.stateObjects.set({ kind: 'local_enrolled' }, stats.localEnrolled);
  }
}
