// The Dataplane over the native addon: loads bpf/build/capture.o with the node's pin root (maps
// are created once and then reused from their pins), writes per-workload entries, and attaches
// each workload's programs with bpf_links pinned under <pinRoot>/workloads/<ns>_<name>/.
import { existsSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { bpfObjectDir } from '../../common/paths';
import type { Logger } from '../../common/log';
import { BpfLink } from '../../native/link';
import { BpfMap } from '../../native/map';
import { netnsCookie } from '../../native/netns';
import { BpfObject, unpin, type BpfProgram } from '../../native/object';
import type { Endpoint } from '../connections/table';
import type { OriginalDestinations } from '../proxy/original-destination';
import { Direction, decodeSockAddr, encodeCidrKey, encodeConnKey, encodeIpKey, encodePortKey, encodeU64, encodeWorkload, PRESENT } from '../../native/layout';
import type { Dataplane } from './dataplane';
import type { CaptureEntries, CidrEntry, PortEntry } from './entries';
import { ATTACH_POINTS, keyFromPinDir, linkPinPath, workloadPinDir, type AttachPoint, type NodeLayout } from './pins';
import type { CaptureWorkload } from './workload';

export const CAPTURE_OBJECT = join(bpfObjectDir, 'capture.o');

const PROGRAM_OF: Record<AttachPoint, { program: string; attachType: string; target: 'cgroup' | 'netns' }> = {
  connect4: { program: 'nm_connect4', attachType: 'cgroup_inet4_connect', target: 'cgroup' },
  connect6: { program: 'nm_connect6', attachType: 'cgroup_inet6_connect', target: 'cgroup' },
  sockops: { program: 'nm_sockops', attachType: 'cgroup_sock_ops', target: 'cgroup' },
  sk_lookup: { program: 'nm_sk_lookup', attachType: 'sk_lookup', target: 'netns' },
};

export const MAP_NAMES = [
  'nm_workloads',
  'nm_excl_ports',
  'nm_excl_cidrs',
  'nm_pending',
  'nm_orig_dst',
  'nm_workload_ips',
  'nm_inbound',
  'nm_fp_socks',
  'nm_fp_permits',
  'nm_fp_config',
] as const;
type MapName = (typeof MAP_NAMES)[number];

const sameBytes = (a: { port: number; direction: number }, b: { port: number; direction: number }): boolean => a.port === b.port && a.direction === b.direction;
const portKey = (cookie: bigint, p: PortEntry): Buffer =>
  encodePortKey({ netnsCookie: cookie, port: p.port, direction: p.direction === Direction.IN ? Direction.IN : Direction.OUT });
const cidrKey = (cookie: bigint, c: CidrEntry): Buffer => encodeCidrKey({ netnsCookie: cookie, cidr: c.text });

export class BpfDataplane implements Dataplane {
  private readonly programs = new Map<AttachPoint, BpfProgram>();
  private readonly maps = new Map<MapName, BpfMap>();
  readonly originals: OriginalDestinations;

  constructor(
    private readonly layout: NodeLayout,
    private readonly log: Logger,
    objectPath = CAPTURE_OBJECT,
  ) {
    const obj = BpfObject.open(objectPath, { pinRoot: layout.pinRoot });
    try {
      for (const p of ATTACH_POINTS) this.programs.set(p, obj.program(PROGRAM_OF[p].program));
      for (const m of MAP_NAMES) this.maps.set(m, obj.map(m));
    } finally {
      obj.close();
    }
    const origDst = this.map('nm_orig_dst');
    this.originals = {
      take: (cookie: bigint, client: Endpoint) => {
        const key = encodeConnKey({ netnsCookie: cookie, address: client.address, port: client.port });
        const v = origDst.lookup(key);
        if (!v) return undefined;
        origDst.delete(key);
        const d = decodeSockAddr(v);
        return { address: d.address, port: d.port };
      },
      mapFd: origDst.fd,
    };
  }

  private map(name: MapName): BpfMap {
    const m = this.maps.get(name);
    if (!m) throw new Error(`capture map ${name} is not open`);
    return m;
  }

  netnsCookie(netnsPath: string): bigint {
    return netnsCookie(netnsPath);
  }

  writeEntries(cookie: bigint, entries: CaptureEntries, previous?: CaptureEntries): void {
    const ports = this.map('nm_excl_ports');
    const cidrs = this.map('nm_excl_cidrs');
    // Exclusions first, the workload entry last: capture starts only with its exclusions in place.
    const ips = this.map('nm_workload_ips');
    for (const p of entries.ports) ports.update(portKey(cookie, p), PRESENT);
    for (const c of entries.cidrs) cidrs.update(cidrKey(cookie, c), PRESENT);
    for (const a of entries.addresses) ips.update(encodeIpKey(a), encodeU64(cookie));
    if (previous) {
      for (const p of previous.ports) if (!entries.ports.some((q) => sameBytes(p, q))) ports.delete(portKey(cookie, p));
      for (const c of previous.cidrs) if (!entries.cidrs.some((d) => d.text === c.text)) cidrs.delete(cidrKey(cookie, c));
      for (const a of previous.addresses) {
        if (!entries.addresses.includes(a)) {
          ips.delete(encodeIpKey(a));
          this.map('nm_inbound').delete(encodeIpKey(a));
        }
      }
    }
    this.map('nm_workloads').update(encodeU64(cookie), encodeWorkload({ flags: entries.flags, outboundPort: entries.outboundPort }));
  }

  deleteEntries(cookie: bigint, entries: CaptureEntries): void {
    this.map('nm_workloads').delete(encodeU64(cookie));
    for (const a of entries.addresses) {
      this.map('nm_inbound').delete(encodeIpKey(a));
      this.map('nm_workload_ips').delete(encodeIpKey(a));
    }
    for (const p of entries.ports) this.map('nm_excl_ports').delete(portKey(cookie, p));
    for (const c of entries.cidrs) this.map('nm_excl_cidrs').delete(cidrKey(cookie, c));
  }

  attach(key: string, w: CaptureWorkload): AttachPoint[] {
    const created: AttachPoint[] = [];
    for (const point of ATTACH_POINTS) {
      const pin = linkPinPath(this.layout, key, point);
      if (existsSync(pin)) continue; // pinned by an earlier run: still attached, never attach twice
      const spec = PROGRAM_OF[point];
      const prog = this.programs.get(point) as BpfProgram;
      const link = spec.target === 'cgroup' ? prog.attachCgroup(w.cgroupPath, spec.attachType) : prog.attachNetns(w.netnsPath, spec.attachType);
      try {
        link.pin(pin);
      } catch (err) {
        link.detach();
        throw err;
      }
      link.close();
      created.push(point);
    }
    return created;
  }

  detach(key: string): void {
    const dir = workloadPinDir(this.layout, key);
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const pin = join(dir, name);
      try {
        BpfLink.fromPin(pin).detach();
      } catch (err) {
        this.log.warn({ pin, err: (err as Error).message }, 'could not detach a pinned link; removing the pin');
      }
      unpin(pin);
    }
    rmdirSync(dir);
  }

  pinnedWorkloads(): string[] {
    try {
      return readdirSync(this.layout.workloadsDir)
        .map(keyFromPinDir)
        .filter((k): k is string => k !== undefined);
    } catch {
      return [];
    }
  }

  registerInbound(addresses: readonly string[], listenerFd: number): void {
    for (const a of addresses) this.map('nm_inbound').updateSocket(encodeIpKey(a), listenerFd);
  }

  removeNodePins(): void {
    for (const m of MAP_NAMES) unpin(join(this.layout.pinRoot, m));
    for (const dir of [this.layout.workloadsDir, this.layout.pinRoot]) {
      try {
        rmdirSync(dir);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT') this.log.warn({ dir, code }, 'pin directory not removed (something else is pinned there)');
      }
    }
  }

  close(): void {
    for (const p of this.programs.values()) p.close();
    for (const m of this.maps.values()) m.close();
    this.programs.clear();
    this.maps.clear();
  }
}
