// The mesh's wire contracts are written once in TypeScript (common/contracts/); the BPF programs
// need the data-path ports as C constants, so bpf/include/common.h repeats them. This test holds
// the copy to the original, as native/layout.unit.test.ts does for the map layouts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../paths';
import * as ports from './ports';
import { ISTIO_PEER_LABELS, NODE_PROXY_TCP_LABELS, WAYPOINT_PEER_LABELS } from './telemetry';

/** Which TypeScript constant each NM_PORT_* of the BPF header stands for. */
const BPF_PORTS: Record<string, keyof typeof ports> = {
  NM_PORT_OUTBOUND: 'OUTBOUND_CAPTURE_PORT',
  NM_PORT_INBOUND: 'INBOUND_CAPTURE_PORT',
  NM_PORT_HBONE: 'HBONE_PORT',
  NM_PORT_ADMIN: 'ADMIN_PORT',
  NM_PORT_METRICS: 'METRICS_PORT',
  NM_PORT_READY: 'READY_PORT',
};

describe('wire contracts', () => {
  it("bpf/include/common.h's ports are the ones in common/contracts/ports.ts", () => {
    const header = readFileSync(join(projectRoot, 'bpf', 'include', 'common.h'), 'utf8');
    const defined = Object.fromEntries([...header.matchAll(/^#define\s+(NM_PORT_\w+)\s+(\d+)\s*$/gm)].map((m) => [m[1], Number(m[2])]));
    expect(Object.keys(defined).sort(), 'every NM_PORT_ of the header has a TypeScript original').toEqual(Object.keys(BPF_PORTS).sort());
    for (const [c, name] of Object.entries(BPF_PORTS)) expect(defined[c], `${c} = ${name}`).toBe(ports[name]);
  });

  it('the node proxy refuses to forward to its own listeners, and only those', () => {
    expect([...ports.NODE_PROXY_PORTS].sort()).toEqual([15000, 15001, 15006, 15008, 15020, 15021]);
    expect(ports.NODE_PROXY_PORTS.has(ports.XDS_TLS_PORT)).toBe(false);
  });

  it("each reporter uses a subset of Istio's standard labels, naming what it leaves out", () => {
    const istio = new Set<string>(ISTIO_PEER_LABELS);
    expect(NODE_PROXY_TCP_LABELS.every((l) => istio.has(l))).toBe(true);
    expect(ISTIO_PEER_LABELS.filter((l) => !(NODE_PROXY_TCP_LABELS as readonly string[]).includes(l))).toEqual([
      'source_canonical_service',
      'source_canonical_revision',
      'destination_canonical_service',
      'destination_canonical_revision',
    ]);
    expect(ISTIO_PEER_LABELS.filter((l) => !(WAYPOINT_PEER_LABELS as readonly string[]).includes(l))).toEqual(['destination_cluster']);
  });
});
