// One access-log line per connection (pino JSON), with the fields an operator greps for: who to
// whom (address, workload, identity), bytes each way, how long, and why it failed or was denied.
import type { Logger } from '../../common/log';
import type { ConnectionPeer, ConnectionRecord, ResponseFlag } from './labels';

export interface ConnectionOutcome {
  /** Bytes from the client to the server. */
  readonly requestBytes: number;
  /** Bytes from the server back to the client. */
  readonly responseBytes: number;
  readonly durationMs: number;
  readonly responseFlags: ResponseFlag;
  /** What went wrong (connect failure, reset, …). */
  readonly error?: string;
  /** Why policy refused the connection, and which policy decided. */
  readonly denyReason?: string;
  readonly policy?: string;
}

const addr = (p: { address: string; port: number }): string => `${p.address.includes(':') ? `[${p.address}]` : p.address}:${p.port}`;

/** How the bytes travelled: HBONE (mTLS tunnel), same-node (no tunnel, no TLS), TCP (plaintext). */
export function accessProtocol(record: ConnectionRecord): 'HBONE' | 'same-node' | 'TCP' {
  if (record.sameNode) return 'same-node';
  return record.mtls ? 'HBONE' : 'TCP';
}

const peer = (p: ConnectionPeer) => ({
  addr: addr(p),
  workload: p.workload ? `${p.workload.namespace}/${p.workload.name}` : undefined,
  identity: p.identity,
});

/** The access-log fields of one connection (pure). */
export function accessLogFields(record: ConnectionRecord, outcome: ConnectionOutcome): Record<string, unknown> {
  return {
    reporter: record.reporter,
    src: peer(record.source),
    dst: { ...peer(record.destination), service: record.service?.hostname },
    ...(record.tunnelPeer ? { tunnel_peer: addr(record.tunnelPeer) } : {}),
    protocol: accessProtocol(record),
    connection_security_policy: record.mtls ? 'mutual_tls' : 'none',
    bytes_sent: outcome.requestBytes,
    bytes_recv: outcome.responseBytes,
    duration_ms: Math.round(outcome.durationMs * 1000) / 1000,
    response_flags: outcome.responseFlags,
    ...(outcome.error !== undefined ? { error: outcome.error } : {}),
    ...(outcome.denyReason !== undefined ? { deny_reason: outcome.denyReason, policy: outcome.policy } : {}),
  };
}

/**
 * The fields of one connection kept in the recent-records ring on 15020 (common/recent-records.ts):
 * what the metrics' labels already say, plus the destination port; no client address or port.
 */
export function recentRecordFields(record: ConnectionRecord, outcome: ConnectionOutcome): Record<string, unknown> {
  const who = (p: ConnectionPeer) => ({ workload: p.workload ? `${p.workload.namespace}/${p.workload.name}` : undefined, identity: p.identity });
  return {
    reporter: record.reporter,
    src: who(record.source),
    dst: { ...who(record.destination), service: record.service?.hostname, port: record.destination.port },
    protocol: accessProtocol(record),
    mtls: record.mtls,
    bytes_sent: outcome.requestBytes,
    bytes_recv: outcome.responseBytes,
    duration_ms: Math.round(outcome.durationMs * 1000) / 1000,
    response_flags: outcome.responseFlags,
    ...(outcome.error !== undefined ? { error: outcome.error } : {}),
    ...(outcome.denyReason !== undefined ? { deny_reason: outcome.denyReason, policy: outcome.policy } : {}),
  };
}

export function logConnection(logger: Logger, record: ConnectionRecord, outcome: ConnectionOutcome): void {
  const fields = accessLogFields(record, outcome);
  if (outcome.responseFlags === 'DENY') logger.info(fields, 'connection denied');
  else if (outcome.error !== undefined) logger.info(fields, 'connection failed');
  else logger.info(fields, 'connection complete');
}
