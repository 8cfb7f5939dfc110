// The mesh's wire contracts are written once in TypeScript (common/contracts/); the BPF programs
// need the data-path ports as C constants, so bpf/include/common.h repeats them. This test holds
// the copy to the original, as native/layout.unit.test.ts does for the map layouts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../paths';
import * as ports from './ports';
import {
  canonicalRevision,
  canonicalService,
  formatEndpointWorkload,
  ISTIO_PEER_LABELS,
  NODE_PROXY_TCP_LABELS,
  parseEndpointWorkload,
  WAYPOINT_PEER_LABELS,
} from './telemetry';

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

  it("both reporters export Istio's whole standard label set", () => {
    expect(NODE_PROXY_TCP_LABELS).toEqual(ISTIO_PEER_LABELS);
    expect(WAYPOINT_PEER_LABELS).toEqual(ISTIO_PEER_LABELS);
  });

  it("derives canonical service and revision as Istio does, and round-trips the endpoint's workload metadata", () => {
    expect(canonicalService({ 'service.istio.io/canonical-name': 'shop', 'app.kubernetes.io/name': 'web', app: 'x' }, 'web-1')).toBe('shop');
    expect(canonicalService({ 'app.kubernetes.io/name': 'web', app: 'x' }, 'web-1')).toBe('web');
    expect(canonicalService({ app: 'x' }, 'web-1')).toBe('x');
    expect(canonicalService(undefined, 'web-1')).toBe('web-1');
    expect(canonicalRevision({ 'service.istio.io/canonical-revision': 'r9', 'app.kubernetes.io/version': 'v2', version: 'v1' })).toBe('r9');
    expect(canonicalRevision({ 'app.kubernetes.io/version': 'v2', version: 'v1' })).toBe('v2');
    expect(canonicalRevision({ version: 'v1' })).toBe('v1');
    expect(canonicalRevision({})).toBe('latest');
    const w = { name: 'web-1', namespace: 'shop', canonicalService: 'web', canonicalRevision: 'v1', cluster: 'Kubernetes' };
    expect(formatEndpointWorkload(w)).toBe('web-1;shop;web;v1;Kubernetes');
    expect(parseEndpointWorkload(formatEndpointWorkload(w))).toEqual(w);
    for (const bad of [undefined, 3, '', 'a;b;c;d', ';shop;web;v1;K', 'web-1;;web;v1;K', 'a;b;c;d;e;f']) expect(parseEndpointWorkload(bad)).toBeUndefined();
  });
});
